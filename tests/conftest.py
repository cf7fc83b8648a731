"""Shared fixtures: Hydra configs composed from conf/ and shrunk for tests.

``compose_train(overrides, tmp_path)`` composes ``conf/train.yaml`` the way
``src/train.py`` would, sends every output under ``tmp_path`` and registers the
config with ``HydraConfig`` so that ``${hydra:...}`` interpolations resolve
outside ``@hydra.main``. Tests get it through the ``compose`` fixture;
``cfg_train`` is the default config, composed once per session and copied per test.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from cli import TINY_RUN
from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

ROOT_DIR = Path(__file__).resolve().parents[1]
CONF_DIR = ROOT_DIR / "conf"

# what every test config gets before the test's own overrides: a few CPU batches,
# CSV logs only (written under tmp_path)
TEST_OVERRIDES = ("trainer=debug", "logger=csv")


def _compose(overrides: Sequence[str]) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose(
            config_name="train",
            return_hydra_config=True,
            overrides=[*TEST_OVERRIDES, *overrides],
        )


def _use_tmp_paths(cfg: DictConfig, tmp_path: Path) -> DictConfig:
    """Point every output at tmp_path and make ``${hydra:...}`` resolvable."""
    output_dir = tmp_path / "run"
    with open_dict(cfg):
        cfg.paths.root_dir = str(ROOT_DIR)
        cfg.paths.log_dir = str(tmp_path / "logs")
        cfg.paths.output_dir = str(output_dir)
        cfg.hydra.runtime.output_dir = str(output_dir)
        cfg.hydra.runtime.cwd = str(ROOT_DIR)
        cfg.hydra.job.num = 0
    HydraConfig().set_config(cfg)
    return cfg


def compose_train(overrides: Sequence[str], tmp_path: Path) -> DictConfig:
    """``conf/train.yaml`` with ``overrides`` (Hydra syntax), outputs under ``tmp_path``."""
    return _use_tmp_paths(_compose(list(overrides)), Path(tmp_path))


@pytest.fixture
def compose(tmp_path) -> Callable[..., DictConfig]:
    """``compose(["model=mlp", "data=ring"])``: a test config under this test's tmp_path."""

    def _compose_here(overrides: Sequence[str] = (), tmp: Path | None = None) -> DictConfig:
        return compose_train(overrides, tmp if tmp is not None else tmp_path)

    return _compose_here


@pytest.fixture(scope="session")
def cfg_train_global() -> DictConfig:
    """The default training config, composed once per session; copy it before changing it."""
    cfg = _compose([])
    with open_dict(cfg):
        # small enough for a CPU test: 16x16 digits, narrow nets, 2 batches
        cfg.data.image_size = 16
        cfg.data.batch_size = 16
        cfg.model.generator.width = 8
        cfg.model.generator.latent_dim = 16
        cfg.model.discriminator.width = 8
        cfg.trainer.limit_train_batches = 2
        cfg.trainer.enable_model_summary = False
    return cfg


@pytest.fixture
def cfg_train(cfg_train_global, tmp_path) -> DictConfig:
    """A private copy of the shrunk default config, writing under this test's tmp_path."""
    return _use_tmp_paths(copy.deepcopy(cfg_train_global), tmp_path)


TINY_CONV = ("data.image_size=16", "model.generator.width=8", "model.discriminator.width=8")
TINY_MODELS = {
    "dcgan": [*TINY_CONV, "model.generator.latent_dim=16"],
    "cdcgan": ["model=cdcgan", *TINY_CONV],
    "ring": ["model=mlp", "data=ring"],
}


def _train_tiny(out: Path, overrides: Sequence[str]) -> Path:
    """Two training batches, then a real Lightning checkpoint at out/last.ckpt."""
    from ganforge.pipeline import train

    cfg = compose_train([*TINY_RUN, *overrides], out)
    _, objects = train(cfg)
    objects["trainer"].save_checkpoint(out / "last.ckpt")
    return out / "last.ckpt"


@pytest.fixture(scope="session")
def train_tiny() -> Callable[..., Path]:
    """``train_tiny(out_dir, name)`` with a name of TINY_MODELS: the path of its last.ckpt."""
    return lambda out, name: _train_tiny(Path(out), TINY_MODELS[name])
