"""The published-setup presets train: each ``experiment=<net>_cifar10`` composes, builds and
runs under ``fast_dev_run`` on fabricated CIFAR-10 files (narrow nets, no Inception)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from ganforge.pipeline import train

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
# loaded by path: pytest's importlib mode puts no test folder on sys.path
_spec = importlib.util.spec_from_file_location(
    "presets_fabricate", Path(__file__).parent / "data" / "fabricate.py"
)
fabricate = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fabricate)
# preset -> overrides that keep its architecture and recipe but shrink the nets
PRESETS = {
    "dcgan_cifar10": ["model.generator.width=4", "model.discriminator.width=4"],
    "sngan_cifar10": ["model.generator.width=8", "model.discriminator.width=8"],
    "biggan_cifar10": ["model.generator.width=4", "model.discriminator.width=4"],
    "r3gan_cifar10": ["model.generator.width=8", "model.generator.cardinality=2"],
}


def test_every_cifar_preset_is_exercised_here():
    on_disk = {p.stem for p in (CONF_DIR / "experiment").glob("*_cifar10.yaml")} - {"wgan_gp_cifar10"}
    assert on_disk <= set(PRESETS), f"add {sorted(on_disk - set(PRESETS))} to PRESETS"


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_preset_runs_under_fast_dev_run(preset, compose, tmp_path):
    fabricate.write_cifar(tmp_path / "cifar", per_batch=8)
    cfg = compose(
        [
            f"experiment={preset}",
            f"data.root={tmp_path / 'cifar'}",
            "data.download=false",
            "data.batch_size=8",
            "metrics=none",
            "logger=none",
            "callbacks=none",
            *PRESETS[preset],
            # enough loader batches for one generator step whatever the preset's n_critic
            "+trainer.fast_dev_run=5",
            "trainer.detect_anomaly=false",  # trainer=debug turns it on; it triples the step
        ]
    )
    _, objects = train(cfg)
    module = objects["model"]
    assert module.g_steps >= 1
    assert module.d_steps >= module.n_critic
    x = module.sample(2)
    assert tuple(x.shape) == (2, 3, 32, 32) and x.isfinite().all()
