"""ganforge: train GANs with PyTorch Lightning and Hydra.

``ganforge.load(ckpt_path)`` returns the trained GAN of a checkpoint; the heavy
imports (torch, Lightning, Hydra) happen only when it is called, so importing the
package stays cheap.
"""

from __future__ import annotations

import importlib

__version__ = "0.2.0"


def load(ckpt_path, map_location=None):
    """The trained GAN of a ganforge checkpoint, in eval mode, ready for ``sample(n, labels=None)``.

    ``map_location``: the device to put it on (``"cpu"``, ``"cuda"``); None: the CPU.
    See ``ganforge.checkpoint.load``.
    """
    # imported by name when called: `import ganforge` (which metrics records do for
    # __version__) must not pull in the pipeline, neither at run time nor in the import graph
    checkpoint = importlib.import_module("ganforge.checkpoint")
    return checkpoint.load(ckpt_path, map_location=map_location)


__all__ = ["__version__", "load"]
