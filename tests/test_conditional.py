"""model=cdcgan end to end: labels flow from the data, grids get a row per class, bad input fails early."""

from __future__ import annotations

import importlib.util
import logging
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.errors import InstantiationException
from omegaconf import open_dict
from PIL import Image

from ganforge.pipeline import build, train


def _fabricate():
    """tests/data/fabricate.py, loaded by path: importlib mode puts no test directory on sys.path."""
    name = "ganforge_tests_fabricate"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).parent / "data" / "fabricate.py")
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


write_image_tree, write_mnist = _fabricate().write_image_tree, _fabricate().write_mnist

SMALL = (
    "logger=none",
    "callbacks=none",
    "+callbacks.samples._target_=ganforge.callbacks.samples.SampleGrid",
    "+callbacks.samples.num_samples=20",
    "+callbacks.samples.nrow=4",
    "data.image_size=16",
    "data.batch_size=16",
    "model.generator.width=8",
    "model.generator.latent_dim=16",
    "model.discriminator.width=8",
    "trainer.limit_train_batches=3",
    "trainer.enable_model_summary=false",
    "++trainer.enable_progress_bar=false",
)


def test_conditional_training_on_digits_writes_a_grid_with_a_row_per_class(compose, tmp_path):
    cfg = compose(["data=digits", "model=cdcgan", *SMALL])
    metrics, objects = train(cfg)
    module, grid_cb = objects["model"], objects["callbacks"][0]
    assert module.generator.num_classes == module.discriminator.num_classes == 10
    assert module.g_steps == 3 and np.isfinite(metrics["train/d_loss"])
    # one row of 4 per class, every class shown
    assert grid_cb.labels.tolist() == [i // 4 for i in range(40)]
    png = Path(cfg.paths.output_dir) / "samples" / "last.png"
    assert png.is_file()
    with Image.open(png) as im:
        assert im.size == (4 * 18 + 2, 10 * 18 + 2)
    x = module.sample(6, labels=torch.tensor([0, 1, 2, 3, 4, 5]))
    assert x.shape == (6, 1, 16, 16)
    assert module.sample(3).shape == (3, 1, 16, 16)  # no labels: classes drawn for the caller


def test_conditional_training_on_a_labelled_folder(compose, tmp_path, caplog):
    root = write_image_tree(tmp_path / "images")
    cfg = compose(
        [
            "data=folder",
            f"data.root={root}",
            "data.labels=true",
            "data.num_classes=3",
            "data.batch_size=4",
            "data.hflip=true",
            "model=cdcgan",
            *(o for o in SMALL if not o.startswith("data.batch_size")),
        ]
    )
    with caplog.at_level(logging.WARNING, logger="ganforge"):
        _, objects = train(cfg)
    assert any("skipped 2 of 11" in r.getMessage() for r in caplog.records if r.name == "ganforge")
    assert objects["model"].g_steps == 2  # 9 readable images, batches of 4


def test_conditional_mnist_on_device(compose, tmp_path):
    write_mnist(tmp_path / "datasets", n_train=64)
    cfg = compose(
        [
            "data=mnist",
            f"data.root={tmp_path / 'datasets'}",
            "data.download=false",
            "data.on_device=true",
            "model=cdcgan",
            *SMALL,
        ]
    )
    _, objects = train(cfg)
    assert objects["model"].g_steps == 3


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["data=digits", "data.num_classes=0"], "model=cdcgan is class-conditional"),
        (["data=ring"], "model=cdcgan needs image data"),
        (["data=digits", "data.image_size=24"], "supports image_size in"),
        (["data=celeba"], "model=cdcgan is class-conditional"),
    ],
)
def test_bad_conditional_configs_fail_when_built(compose, overrides, message):
    cfg = compose([*overrides, "model=cdcgan", "logger=none", "callbacks=none"])
    with pytest.raises(InstantiationException, match=message):
        build(cfg)


def test_class_count_the_data_does_not_have_fails_before_training(compose, tmp_path):
    write_mnist(tmp_path / "datasets", classes=4)
    cfg = compose(
        ["data=mnist", f"data.root={tmp_path / 'datasets'}", "data.download=false", "model=cdcgan", *SMALL]
    )
    with pytest.raises(ValueError, match="only 4 of them present"):
        train(cfg)
    root = write_image_tree(tmp_path / "images")
    cfg = compose(["data=folder", f"data.root={root}", "data.num_classes=3", "model=cdcgan", *SMALL])
    with pytest.raises(InstantiationException, match=r"data\.labels=false"):
        build(cfg)
    flat = tmp_path / "flat"
    flat.mkdir()
    Image.new("RGB", (8, 8)).save(flat / "a.png")
    cfg = compose(
        ["data=folder", f"data.root={flat}", "data.labels=true", "data.num_classes=2", "model=cdcgan", *SMALL]
    )
    with open_dict(cfg):
        cfg.data.batch_size = 1
    with pytest.raises(ValueError, match="all directly in it"):
        train(cfg)


METRICS = ("metrics=digits", "metrics.num_fake=100", "metrics.kid_subsets=2", "metrics.kid_subset_size=50")


def test_fid_of_a_conditional_checkpoint_is_the_same_twice(compose, tmp_path, train_tiny):
    # the evaluator's seeded generator draws the labels as well as the latents
    from hydra.utils import instantiate

    import ganforge

    gan = ganforge.load(train_tiny(tmp_path / "c", "cdcgan"))
    evaluator = instantiate(compose(["model=cdcgan", *METRICS]).metrics).evaluator
    evaluator.prepare(instantiate(compose(["model=cdcgan", "data.image_size=16"]).data), "cpu")
    state = torch.get_rng_state()
    first, second = evaluator.evaluate(gan), evaluator.evaluate(gan)
    assert first == second and np.isfinite(first["fid"])
    assert torch.equal(torch.get_rng_state(), state)  # evaluating leaves the training stream alone


def test_training_with_metrics_every_epoch_gives_the_weights_of_training_without(compose, tmp_path):
    weights = {}
    for name, metrics in (("with", [*METRICS, "metrics.every_n_epochs=1"]), ("without", ["metrics=none"])):
        cfg = compose(["model=cdcgan", *SMALL, "trainer.max_epochs=2", *metrics], tmp_path / name)
        with open_dict(cfg):
            cfg.callbacks.metrics = cfg.metrics
        _, objects = train(cfg)
        assert objects["model"].g_steps == 6
        weights[name] = objects["model"].state_dict()
    for key, value in weights["without"].items():
        assert torch.equal(weights["with"][key], value), key
