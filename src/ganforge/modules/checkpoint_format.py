"""What ganforge keeps in a checkpoint beside Lightning's entries, and reading older ones.

``ckpt["ganforge"]`` holds the counters, the run config and the random state. Format 2
(ganforge 0.2, the shared module base) counts steps and images per network by name.
Format 1 (ganforge 0.1, ``ganforge.module.GAN``) had ``g_steps``, ``d_steps`` and a
rank-0 ``images_seen``; ``upgrade`` turns it into format 2, so checkpoints users already
have keep loading, resuming, sampling and evaluating.
"""

from __future__ import annotations

from typing import Any

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
