"""Whether ``ckpt_path`` can resume this run: the file, and the model and data that wrote it.

``read_resume_checkpoint`` reads the file before anything is built and compares the run
identity (model and data classes and shapes) stored with it; ``check_resume_weights``
compares its tensors with the GAN this run built. Either refusal names both runs in
Hydra's terms and prints the command that resumes the checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from ganforge.checkpoint_io import CheckpointFileError, read_checkpoint
from ganforge.errors import ConfigError
from ganforge.modules.gan import GAN

# the Hydra groups a run is named by, recorded in the run config as "_choices"
CHOICE_GROUPS = ("model", "data", "loss")
# what a checkpoint's run and this run must agree on for ckpt_path to resume it
RUN_IDENTITY = (
    "model._target_",
    "model.generator._target_",
    "model.discriminator._target_",
    "data._target_",
    "data.data_shape",
    "data.image_size",
    "data.channels",
    "data.num_classes",
)
# what tells the options of a group apart, to name the option of a checkpoint without _choices
_OPTION_KEYS = {
    "model": ("_target_", "generator._target_", "discriminator._target_"),
    "data": ("_target_", "kind"),
    "loss": ("objective._target_",),
}
_MISSING = object()
_SHOWN = 6


def group_choices(cfg: DictConfig) -> dict[str, str]:
    """The options of the model, data and loss groups this run was composed with ({} outside Hydra)."""
    choices = OmegaConf.select(cfg, "hydra.runtime.choices", default=None)  # composed with its hydra node
    if choices is None and HydraConfig.initialized():
        choices = HydraConfig.get().runtime.choices
    if not choices:
        return {}
    return {g: str(choices[g]) for g in CHOICE_GROUPS if choices.get(g) is not None}


def read_resume_checkpoint(cfg: DictConfig) -> tuple[Path, dict, dict] | None:
    """``cfg.ckpt_path`` read on the CPU, refused with a ``ConfigError`` when it is a bad file or
    was written by a run of another model or data. None without ``ckpt_path``."""
    if not cfg.get("ckpt_path"):
        return None  # an empty ckpt_path is named by check_config
    path = Path(str(cfg.ckpt_path)).expanduser()
    try:
        ckpt, state = read_checkpoint(path, resuming=True)
    except CheckpointFileError as err:
        raise ConfigError(str(err)) from err
    differences = _config_differences(state["config"], cfg)
    if differences:
        raise ConfigError(_other_run_message(path, state["config"], cfg, differences, []))
    return path, ckpt, state


def check_resume_weights(cfg: DictConfig, path: Path, ckpt: dict, state: dict, module: GAN) -> None:
    """Every tensor of the checkpoint fits the GAN this run built (names and shapes), or a
    ``ConfigError`` naming both runs; Lightning would list the mismatches raw, mid-setup."""
    own = module.state_dict()
    stored = ckpt.get("state_dict") or {}
    reshaped = [k for k in own if k in stored and tuple(own[k].shape) != tuple(stored[k].shape)]
    lacking = [k for k in own if k not in stored]
    extra = [k for k in stored if k not in own]
    problems = []
    if reshaped:
        shown = "; ".join(
            f"{k}: {list(stored[k].shape)} in the checkpoint, {list(own[k].shape)} here"
            for k in reshaped[:_SHOWN]
        )
        problems.append(f"{len(reshaped)} tensors of other shapes ({shown}{_more(reshaped, '; ')})")
    if lacking:
        problems.append(f"{len(lacking)} tensors the checkpoint lacks ({_few(lacking)})")
    if extra:
        problems.append(f"{len(extra)} tensors this run's GAN has no place for ({_few(extra)})")
    if problems:
        fields = _field_differences(state["config"], cfg)
        raise ConfigError(_other_run_message(path, state["config"], cfg, fields, problems))


def _config_differences(stored: dict, cfg: DictConfig) -> list[tuple[str, Any, Any]]:
    out, run = [], _container(cfg)
    for key in RUN_IDENTITY:
        theirs, ours = _stored_value(stored, key), _stored_value(run, key)
        if theirs is not _MISSING and ours is not _MISSING and _plain(theirs) != _plain(ours):
            out.append((key, theirs, ours))
    return out


def _field_differences(stored: dict, cfg: DictConfig) -> list[tuple[str, Any, Any]]:
    """The identity fields and the networks' settings (width, latent_dim, ...) that differ."""
    out, run = _config_differences(stored, cfg), _container(cfg)
    for net in ("generator", "discriminator"):
        theirs = _stored_value(stored, f"model.{net}")
        if not isinstance(theirs, dict):
            continue
        for name, value in theirs.items():
            key = f"model.{net}.{name}"
            ours = _stored_value(run, key)
            if key not in RUN_IDENTITY and ours is not _MISSING and _plain(value) != _plain(ours):
                out.append((key, value, ours))
    return out


def _other_run_message(
    path: Path, stored: dict, cfg: DictConfig, fields: list[tuple[str, Any, Any]], weights: list[str]
) -> str:
    theirs, ours = _stored_choices(stored), group_choices(cfg)
    lines = [
        f"ckpt_path={path} was written by another run than this one and cannot resume it: the checkpoint "
        f"was written by {_describe(theirs, stored)}, this run is {_describe(ours, _container(cfg))}."
    ]
    if fields:
        shown = "; ".join(
            f"{k} is {_hydra_value(a)} in the checkpoint, {_hydra_value(b)} here"
            for k, a, b in fields[:_SHOWN]
        )
        lines.append(f"They differ in {shown}{_more(fields, '; ')}.")
    if weights:
        lines.append("Its weights do not fit this run's GAN: " + ", ".join(weights) + ".")
    lines.append(
        "To resume the checkpoint, run with the config it was written by:\n"
        f"  python src/train.py {_resume_overrides(path, stored, cfg, theirs, ours, fields)}ckpt_path={path}"
    )
    lines.append(f"To train {_describe(ours, _container(cfg))} instead, drop ckpt_path to start afresh.")
    return "\n".join(lines)


def _stored_choices(stored: dict) -> dict[str, str]:
    """The group options a checkpoint's run was composed with: recorded, or guessed from conf/."""
    recorded = stored.get("_choices") or _stored_value(stored, "hydra.runtime.choices")
    choices = {g: str(recorded[g]) for g in CHOICE_GROUPS if isinstance(recorded, dict) and recorded.get(g)}
    for group in CHOICE_GROUPS:
        if group not in choices and isinstance(stored.get(group), dict):
            guess = _guess_option(group, stored[group])
            if guess:
                choices[group] = guess
    return choices


def _guess_option(group: str, stored: dict) -> str | None:
    """The one option of ``conf/<group>/`` whose class paths (and kind) are the stored ones."""
    directory = _conf_dir()
    if directory is None or not (directory / group).is_dir():
        return None
    keys = [k for k in _OPTION_KEYS[group] if _stored_value(stored, k) not in (_MISSING, None)]
    if not keys:
        return None
    matches = []
    for file in sorted((directory / group).glob("*.yaml")):
        try:
            option = OmegaConf.to_container(OmegaConf.load(file), resolve=False)
        except Exception:  # a file that is no plain config option is no candidate
            continue
        if isinstance(option, dict) and all(
            _stored_value(option, k) == _stored_value(stored, k) for k in keys
        ):
            matches.append(file.stem)
    return matches[0] if len(matches) == 1 else None


def _conf_dir() -> Path | None:
    if HydraConfig.initialized():
        for source in HydraConfig.get().runtime.config_sources:
            if source.provider == "main" and source.schema == "file":
                return Path(source.path)
    repo_conf = Path(__file__).resolve().parents[2] / "conf"  # an editable install of the repository
    return repo_conf if repo_conf.is_dir() else None


def _describe(choices: dict[str, str], config: dict) -> str:
    """``model=mlp data=ring loss=vanilla``, with class paths where an option is not known."""
    parts = []
    for group in CHOICE_GROUPS:
        if group in choices:
            parts.append(f"{group}={choices[group]}")
        elif group == "model":
            parts.append(
                f"model {_stored_value(config, 'model._target_')} with generator "
                f"{_stored_value(config, 'model.generator._target_')}"
            )
        elif group == "data":
            parts.append(f"data {_stored_value(config, 'data._target_')}")
    return " ".join(str(p) for p in parts)


def _resume_overrides(
    path: Path, stored: dict, cfg: DictConfig, theirs: dict, ours: dict, fields: list
) -> str:
    """The command-line overrides of the checkpoint's run: its .hydra/overrides.yaml when the
    checkpoint sits in its run directory, else its group options (and, when those are this
    run's, the settings that differ)."""
    recorded = path.parent.parent / ".hydra" / "overrides.yaml"
    if path.parent.name == "checkpoints" and recorded.is_file():
        try:
            overrides = [str(o) for o in OmegaConf.load(recorded) if not str(o).startswith("ckpt_path=")]
        except Exception:
            overrides = None
        if overrides is not None:
            return "".join(f"{o} " for o in overrides)
    words = [f"{g}={theirs[g]}" for g in CHOICE_GROUPS if g in theirs]
    if all(theirs.get(g) == ours.get(g) for g in ("model", "data")):
        for key, value, _ in fields:
            node, _, name = key.rpartition(".")
            parent = OmegaConf.select(cfg, node, default=None)
            if not name.startswith("_") and not (
                isinstance(parent, DictConfig) and name in parent and OmegaConf.is_interpolation(parent, name)
            ):
                words.append(f"{key}={_hydra_value(value)}")
    return "".join(f"{w} " for w in words)


def _stored_value(config: Any, key: str) -> Any:
    for part in key.split("."):
        if not isinstance(config, dict) or part not in config:
            return _MISSING
        config = config[part]
    return config


def _container(cfg: DictConfig) -> dict:
    return {g: OmegaConf.to_container(cfg[g], resolve=True) for g in ("model", "data") if g in cfg}


def _plain(value: Any) -> Any:
    return tuple(_plain(v) for v in value) if isinstance(value, (list, tuple)) else value


def _hydra_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_hydra_value(v) for v in value) + "]"
    return str(value)


def _few(keys: list[str]) -> str:
    return ", ".join(keys[:_SHOWN]) + _more(keys, ", ")


def _more(items: list, sep: str) -> str:
    return f"{sep}and {len(items) - _SHOWN} more" if len(items) > _SHOWN else ""
