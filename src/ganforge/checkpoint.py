"""Open a ganforge checkpoint and rebuild the trained GAN from it, without Hydra's app.

A ganforge checkpoint carries the resolved training config at
``ckpt["ganforge"]["config"]`` and the weights at ``ckpt["state_dict"]``, so the
GAN is instantiated from the stored config and handed its weights. Checkpoints of
older ganforge versions are read through ``ganforge.modules.checkpoint_format``; a file
that is no usable checkpoint is named by ``ganforge.checkpoint_io.read_checkpoint``.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from ganforge.checkpoint_io import EXAMPLE, CheckpointFileError, read_checkpoint
from ganforge.modules.gan import GAN
from ganforge.pipeline import ConfigError, build_module


def load_checkpoint(ckpt_path: str | os.PathLike | None) -> tuple[Path, dict, DictConfig]:
    """The checkpoint file, its contents and the training config inside it, or a clear error.

    Every bad file (missing, empty, not a checkpoint, cut short, another program's, a newer
    ganforge's) is a ``ConfigError`` that names the file and the problem
    (``ganforge.checkpoint_io.read_checkpoint``, which training's ``ckpt_path`` shares).
    """
    if not ckpt_path:
        raise ConfigError(f"ckpt_path is required, e.g. ckpt_path={EXAMPLE}")
    path = Path(str(ckpt_path)).expanduser()
    try:
        # weights_only: ganforge keeps its checkpoints to tensors and plain types (Lightning
        # resumes them the same way), so an untrusted file cannot run code when opened
        ckpt, state = read_checkpoint(path)
    except CheckpointFileError as err:
        raise ConfigError(str(err)) from err
    ckpt["ganforge"] = state  # in the current format from here on
    return path, ckpt, OmegaConf.create(state["config"])


def module_from_checkpoint(path: Path, ckpt: dict, cfg: DictConfig) -> GAN:
    """The GAN of the stored config with the stored weights, in eval mode, on the CPU."""
    module = build_module(cfg)
    try:
        module.load_state_dict(ckpt["state_dict"])
    except RuntimeError as err:
        raise ConfigError(f"{path}: the weights do not fit the GAN its config describes: {err}") from err
    module.load_counters(ckpt["ganforge"])  # the RNG states are for resuming, not restored here
    return module.eval()


def load(ckpt_path: str | os.PathLike, map_location: str | torch.device | None = None) -> GAN:
    """The trained GAN of a checkpoint, in eval mode, ready for ``sample(n, labels=None)``.

    ``map_location``: the device to put it on (``"cpu"``, ``"cuda"``, ``"cuda:1"``);
    None keeps it on the CPU, where every checkpoint can be opened.
    """
    path, ckpt, cfg = load_checkpoint(ckpt_path)
    module = module_from_checkpoint(path, ckpt, cfg)
    return module.to(torch.device(map_location) if map_location is not None else "cpu")


def pick_device(name: str | None) -> torch.device:
    """``auto``/None: the GPU when there is one, else the CPU."""
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def beside(ckpt: Path, suffix: str) -> Path:
    """``<dir>/<stem><suffix>`` next to the checkpoint: last.ckpt -> last<suffix>."""
    return ckpt.parent / f"{ckpt.stem}{suffix}"
