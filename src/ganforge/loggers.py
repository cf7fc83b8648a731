"""Weights & Biases around a run: online or offline, group and name, config, and the end of the run.

W&B asks for an API key (or fails, where nobody can type one) when it has neither a key
nor a mode. A training run must never stop there: without ``WANDB_MODE``, a key in
``WANDB_API_KEY`` or a ``wandb login`` entry in ``~/.netrc``, runs are logged offline
under the run directory and can be uploaded later with ``wandb sync``.
"""

from __future__ import annotations

import logging
import netrc
import os
import sys
from urllib.parse import urlparse

from omegaconf import DictConfig, OmegaConf, open_dict

log = logging.getLogger("ganforge")


def _has_login() -> bool:
    """Whether W&B can authenticate without asking (the key itself is never read out)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    try:
        return netrc.netrc().authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def wandb_mode() -> str:
    """``WANDB_MODE`` if set, else online with a login and offline without one."""
    return os.environ.get("WANDB_MODE") or ("online" if _has_login() else "offline")


def _setup_name() -> str:
    """``hydra.job.override_dirname``: this job's overrides less the keys that only repeat a
    setup (the seed, the device count: ``hydra.job.config.override_dirname.exclude_keys``)."""
    from hydra.core.hydra_config import HydraConfig

    return str(HydraConfig.get().job.get("override_dirname") or "") if HydraConfig.initialized() else ""


def configure_wandb(cfg: DictConfig) -> None:
    """Fill in ``cfg.logger.wandb`` before it is instantiated; nothing without a W&B logger.

    - mode: offline unless W&B can log in (module docstring), announced with the way to sync;
    - group: ``task_name`` and the overrides other than the seed, so repeats of one setup
      (a ``seed=1,2,3`` sweep) are averaged side by side; name: the group and the seed;
    - config: the resolved run config (logger and hydra nodes aside), W&B's run config.
    """
    wb = (cfg.get("logger") or {}).get("wandb")
    if not isinstance(wb, DictConfig) or "WandbLogger" not in str(wb.get("_target_", "")):
        return
    if not os.environ.get("WANDB_MODE") and not wb.get("offline") and wandb_mode() == "offline":
        os.environ["WANDB_MODE"] = "offline"  # children (DDP ranks) inherit it
        log.info(
            "W&B: no API key and no WANDB_MODE, logging offline under %s/wandb; upload the run "
            "later with `wandb sync <that folder>/offline-run-*` (or set WANDB_MODE=online / "
            "WANDB_API_KEY to log online)",
            wb.get("save_dir", "."),
        )
    overrides = _setup_name()
    group = f"{cfg.get('task_name', 'train')}" + (f":{overrides}" if overrides else "")
    with open_dict(cfg):
        if wb.get("group") is None:
            wb.group = group[:128]  # W&B's limit
        if wb.get("name") is None:
            seed = f" seed={cfg.get('seed')}"
            wb.name = group[: 128 - len(seed)] + seed
        if wb.get("config") is None:
            resolved = OmegaConf.to_container(cfg, resolve=True)
            wb.config = {k: v for k, v in resolved.items() if k not in ("logger", "hydra")}


def finish_wandb(exit_code: int = 0) -> None:
    """End this process's W&B run, if any, and say how to upload it when it was offline.

    Called at the end of every Hydra job (``ganforge.hydra_callbacks``): the next job of a
    multirun then starts its own run instead of writing into this one.
    """
    wandb = sys.modules.get("wandb")  # a job that never used W&B does not import it
    run = getattr(wandb, "run", None)
    if run is None:
        return
    offline = run.settings.mode in ("offline", "dryrun")
    sync_dir = run.settings.sync_dir
    wandb.finish(exit_code=exit_code)
    if offline:
        log.info("W&B run saved offline; upload it with: wandb sync %s", sync_dir)


__all__ = ["configure_wandb", "finish_wandb", "wandb_mode"]
