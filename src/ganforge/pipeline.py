"""From a composed Hydra config to a trained GAN.

Data flows one way: config -> instantiate -> datamodule + GAN + callbacks +
loggers -> Trainer. Entry points in ``src/`` only call into this module.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

import ganforge.resolvers  # noqa: F401  (registers ${mul:..} before any config resolves)
from ganforge.checkpoint_io import CheckpointFileError, sniff_checkpoint
from ganforge.data.subset import check_subset
from ganforge.errors import ConfigError
from ganforge.loggers import configure_wandb
from ganforge.modules.checkpoint_format import random_state, restore_random_state
from ganforge.modules.gan import GAN
from ganforge.resume_check import check_resume_weights, group_choices, read_resume_checkpoint

log = logging.getLogger("ganforge")


def check_config(cfg: DictConfig) -> None:
    """Catch what would otherwise fail late or silently."""
    ckpt = cfg.get("ckpt_path")
    if ckpt is not None:
        if not str(ckpt).strip():
            raise ConfigError(
                "ckpt_path is empty; pass a checkpoint to resume, or drop ckpt_path to start afresh"
            )
        try:  # the cheap checks (exists, a file, not empty, a torch file, not cut short); train reads it
            sniff_checkpoint(Path(str(ckpt)), resuming=True)
        except CheckpointFileError as err:
            raise ConfigError(str(err)) from err
    for name in ("g_optimizer", "d_optimizer"):
        lr = cfg.model.get(name, {}).get("lr")
        if lr is not None and not float(lr) > 0:
            raise ConfigError(f"model.{name}.lr must be positive, got {lr}")
    if int(cfg.data.get("batch_size", 1)) <= 0:
        raise ConfigError(f"data.batch_size must be a positive integer, got {cfg.data.batch_size}")
    try:  # the value alone; its size against the data is checked when the data are loaded
        check_subset(cfg.data.get("subset"))
    except ValueError as err:
        raise ConfigError(str(err)) from None
    data_classes = int(cfg.data.get("num_classes") or 0)
    for net in ("generator", "discriminator"):
        classes = cfg.model.get(net, {}).get("num_classes")
        # 0 or null: an unconditional net, which any data can feed (labels are ignored)
        if classes and int(classes) != data_classes:
            raise ConfigError(
                f"model.{net}.num_classes={classes} but data={cfg.data._target_.rsplit('.', 1)[-1]} "
                f"has num_classes={data_classes}; set it to ${{data.num_classes}} (class-conditional) "
                "or 0 (unconditional)"
            )
    if int(cfg.loss.get("n_critic", 1)) < 1:
        raise ConfigError(f"loss.n_critic must be >= 1, got {cfg.loss.n_critic}")


def build_module(cfg: DictConfig) -> GAN:
    """The GAN from the model group, with the objective and schedule from the loss group."""
    regularizers = {k: instantiate(v) for k, v in (cfg.loss.get("regularizers") or {}).items()}
    module: GAN = instantiate(
        cfg.model,
        loss=instantiate(cfg.loss.objective),
        regularizers=regularizers,
        n_critic=cfg.loss.n_critic,
        lazy_correction=bool(cfg.loss.get("lazy_correction", False)),
        _convert_="partial",
    )
    module.run_config = OmegaConf.to_container(cfg, resolve=True)
    return module


@contextmanager
def random_state_kept() -> Iterator[None]:
    """Run a block without moving the global random streams (those a checkpoint keeps)."""
    state = random_state()
    try:
        yield
    finally:
        restore_random_state(state)


def _instantiate_group(group: DictConfig | None) -> list[Any]:
    out = []
    for _, conf in (group or {}).items():
        if isinstance(conf, DictConfig) and "_target_" in conf:
            out.append(instantiate(conf))
    return out


def build(cfg: DictConfig) -> dict[str, Any]:
    """Every object a run needs, instantiated but not started."""
    check_config(cfg)
    if cfg.get("flush_denormal", False):
        # Small nets trained on the CPU drift into subnormal floats (Adam's second
        # moments of tiny gradients), which the CPU computes 10-100x slower; flushing
        # them to zero changes no result that matters and restores the speed.
        torch.set_flush_denormal(True)
    L.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data)
    module = build_module(cfg)
    choices = group_choices(cfg)
    if choices:  # stored with the config: a resume of another run can say model=mlp data=ring
        module.run_config["_choices"] = choices
    # What callbacks draw when they are built (a feature extractor's initial weights) must
    # not shift the training stream: a run with metrics trains the weights it would without.
    with random_state_kept():
        callbacks = _instantiate_group(cfg.get("callbacks"))
        configure_wandb(cfg)  # offline without a login; group, name and config of the W&B run
        loggers = _instantiate_group(cfg.get("logger"))
        trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    return {"cfg": cfg, "datamodule": datamodule, "model": module, "callbacks": callbacks, "trainer": trainer}


def train(cfg: DictConfig) -> tuple[dict[str, float], dict[str, Any]]:
    """Fit, and return the final metrics and the objects of the run."""
    resume = read_resume_checkpoint(cfg)  # before anything is built: a bad file stops the run here
    objects = build(cfg)
    trainer: L.Trainer = objects["trainer"]
    if resume is not None:
        check_resume_weights(cfg, *resume, objects["model"])
        del resume  # memory-mapped; Lightning reads the file again itself
        log.info("Resuming from %s", cfg.ckpt_path)
    trainer.fit(objects["model"], datamodule=objects["datamodule"], ckpt_path=cfg.get("ckpt_path"))
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
    if trainer.is_global_zero:  # a sweep's summary table reads it (ganforge.hydra_callbacks)
        out = Path(trainer.default_root_dir) / "final_metrics.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(metrics, indent=2, sort_keys=True))
    log.info("Run directory: %s", trainer.default_root_dir)
    return metrics, objects


def metric_value(metrics: dict[str, float], name: str | None) -> float | None:
    """The metric a sweep optimises, with a clear error when it was never logged."""
    if not name:
        return None
    if name not in metrics:
        raise ConfigError(f"optimized_metric={name!r} was not logged; logged metrics: {sorted(metrics)}")
    return metrics[name]
