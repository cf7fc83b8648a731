"""Checkpoints of earlier ganforge versions keep working, and newer ones are refused by name.

tests/fixtures/legacy/ holds checkpoints written by ganforge 0.1 (format 1, before the
shared module base; see its README) with the samples that version drew from them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import ganforge
from ganforge.evaluate import evaluate
from ganforge.pipeline import ConfigError, train

ROOT = Path(__file__).resolve().parents[1]
LEGACY = Path(__file__).resolve().parent / "fixtures" / "legacy"


@pytest.mark.parametrize("name", ["dcgan_digits16", "mlp_ring"])
def test_a_format_1_checkpoint_loads_and_draws_what_its_version_drew(name):
    gan = ganforge.load(LEGACY / f"{name}.ckpt")
    old = torch.load(LEGACY / f"{name}.ckpt", weights_only=True)["ganforge"]
    assert (gan.g_steps, gan.d_steps, gan.images_seen) == (old["g_steps"], old["d_steps"], old["images_seen"])
    expected = torch.load(LEGACY / f"{name}_samples_seed0.pt", weights_only=True)
    drawn = gan.sample(expected["n"], generator=torch.Generator().manual_seed(expected["seed"]))
    assert torch.equal(drawn, expected["samples"])


def test_sample_and_eval_read_a_format_1_checkpoint(tmp_path, compose):
    out = tmp_path / "grid.png"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "src" / "sample.py"),
            f"ckpt_path={LEGACY / 'dcgan_digits16.ckpt'}",
            f"out={out}",
            f"hydra.run.dir={tmp_path / 'h'}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert out.is_file()
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = hydra_compose(
            "eval",
            [
                f"ckpt_path={LEGACY / 'dcgan_digits16.ckpt'}",
                f"out={tmp_path / 'metrics.json'}",
                f"paths.root_dir={tmp_path}",
                "metrics.num_fake=100",
                "metrics.kid_subsets=2",
                "metrics.kid_subset_size=50",
            ],
        )
    record = evaluate(cfg)
    assert (
        record["g_steps"] == 2 and json.loads((tmp_path / "metrics.json").read_text())["results"]["fid"] > 0
    )


def test_training_resumes_from_a_format_1_checkpoint(compose, tmp_path):
    # the run that wrote it: TINY_MODELS["dcgan"] of tests/conftest.py, 2 batches of epoch 0
    cfg = compose(
        [
            "data.image_size=16",
            "model.generator.width=8",
            "model.discriminator.width=8",
            "model.generator.latent_dim=16",
            "trainer.limit_train_batches=2",
            "trainer.max_epochs=2",
            "trainer.detect_anomaly=false",
            "metrics=none",
            f"ckpt_path={LEGACY / 'dcgan_digits16.ckpt'}",
        ]
    )
    _, objects = train(cfg)
    module, trainer = objects["model"], objects["trainer"]
    assert (module.g_steps, module.d_steps, trainer.global_step) == (4, 4, 4)
    assert module.images_seen == 4 * 64


def test_a_checkpoint_of_a_newer_format_names_both_versions(tmp_path):
    ckpt = torch.load(LEGACY / "dcgan_digits16.ckpt", weights_only=True)
    ckpt["ganforge"] = {"format": 99, "version": "9.0.0", "config": ckpt["ganforge"]["config"]}
    path = tmp_path / "future.ckpt"
    torch.save(ckpt, path)
    with pytest.raises(ConfigError, match=r"ganforge 9\.0\.0 \(checkpoint format 99\).*Upgrade ganforge"):
        ganforge.load(path)


def test_a_format_1_ddp_checkpoint_counts_the_images_of_every_rank():
    from ganforge.modules.checkpoint_format import upgrade

    state = {"g_steps": 5, "d_steps": 5, "images_seen": 320, "config": None, "rng": None}
    new = upgrade({"ganforge": state, "ganforge_ddp": {"world_size": 4, "rng": []}})
    assert new["images"]["discriminator"] == 1280 and new["world_size"] == 4
    assert new["steps"] == {"generator": 5, "discriminator": 5}
