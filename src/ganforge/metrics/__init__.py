"""Metrics: FID/IS/KID of generated images (torchmetrics, cached real statistics) and mode
coverage for the 2-D toys."""
