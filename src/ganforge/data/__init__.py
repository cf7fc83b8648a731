"""Datasets and LightningDataModules.

A datamodule declares what the nets must fit (``image_size``, ``channels``,
``num_classes``, ``data_shape``) and serves batches of ``(x, y)`` with x in
[-1, 1]. It knows nothing about networks.
"""
