"""What ganforge keeps in a checkpoint beside Lightning's entries, and reading older ones.

``ckpt["ganforge"]`` holds the counters, the run config and the random state. Format 2
(ganforge 0.2, the shared module base) counts steps and images per network by name.
Format 1 (ganforge 0.1, ``ganforge.module.GAN``) had ``g_steps``, ``d_steps`` and a
rank-0 ``images_seen``; ``upgrade`` turns it into format 2, so checkpoints users already
have keep loading, resuming, sampling and evaluating.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

import ganforge

FORMAT = 2
# format 1 named the one module class there was
_RENAMED_TARGETS = {"ganforge.module.GAN": "ganforge.modules.gan.GAN"}


class CheckpointFormatError(ValueError):
    """A checkpoint that ganforge cannot read: foreign, or written by a newer ganforge."""


def upgrade(checkpoint: dict[str, Any], source: str = "this checkpoint") -> dict[str, Any]:
    """``checkpoint["ganforge"]`` in the current format, or a clear error."""
    state = checkpoint.get("ganforge") if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise CheckpointFormatError(
            f"{source} was not written by ganforge (no 'ganforge' entry); "
            "pass a checkpoint from a ganforge run's checkpoints/ directory"
        )
    fmt = int(state.get("format", 1))
    if fmt > FORMAT:
        raise CheckpointFormatError(
            f"{source} was written by ganforge {state.get('version', '?')} (checkpoint format {fmt}); "
            f"this is ganforge {ganforge.__version__}, which reads formats up to {FORMAT}. "
            "Upgrade ganforge (pip install -U -e . in a newer checkout) to open it."
        )
    if fmt == 1:
        # a DDP run of format 1 counted rank 0's images only; every rank saw as many
        world_size = int((checkpoint.get("ganforge_ddp") or {}).get("world_size", 1))
        state = {
            "format": FORMAT,
            "version": "0.1.0",
            "steps": {"generator": int(state["g_steps"]), "discriminator": int(state["d_steps"])},
            "images": {"generator": 0, "discriminator": int(state["images_seen"]) * world_size},
            "world_size": world_size,
            "config": upgrade_config(state.get("config")),
            "rng": state.get("rng"),
        }
    return state


def upgrade_config(config: dict | None) -> dict | None:
    """A stored run config with the class paths of the current layout."""
    if not config:
        return config
    model = config.get("model")
    if isinstance(model, dict) and model.get("_target_") in _RENAMED_TARGETS:
        config = {**config, "model": {**model, "_target_": _RENAMED_TARGETS[model["_target_"]]}}
    return config


def random_state() -> dict[str, Any]:
    """torch's, CUDA's, NumPy's and Python's global random states, as plain types and tensors
    (Lightning loads checkpoints with weights_only=True)."""
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": _numpy_state_to_plain(np.random.get_state()),
        "python": random.getstate(),
    }


def restore_random_state(rng: dict[str, Any]) -> None:
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    np.random.set_state(_numpy_state_from_plain(rng["numpy"]))
    random.setstate(rng["python"])


def _numpy_state_to_plain(state: tuple) -> tuple:
    kind, keys, pos, has_gauss, cached = state
    return (kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached))


def _numpy_state_from_plain(state: tuple) -> tuple:
    kind, keys, pos, has_gauss, cached = state
    return (kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached)
