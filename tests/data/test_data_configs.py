"""conf/data/{mnist,fashion_mnist,cifar10,celeba,folder}.yaml compose, build and declare the contract."""

from __future__ import annotations

import logging

import pytest
from hydra.utils import instantiate

from ganforge.data.base import GANDataModule
from ganforge.nets import cdcgan, dcgan
from ganforge.pipeline import build

DECLARED = {  # image_size, channels, num_classes
    "mnist": (32, 1, 10),
    "fashion_mnist": (32, 1, 10),
    "cifar10": (32, 3, 10),
    "celeba": (64, 3, 0),
    "folder": (64, 3, 0),
}


@pytest.mark.parametrize("name", sorted(DECLARED))
def test_config_declares_what_models_interpolate(name, compose, tmp_path):
    cfg = compose([f"data={name}", f"paths.data_dir={tmp_path}", "logger=none"])
    dm = instantiate(cfg.data)  # construction touches no files
    assert isinstance(dm, GANDataModule)
    size, channels, classes = DECLARED[name]
    assert (dm.image_size, dm.channels, dm.num_classes) == (size, channels, classes)
    assert tuple(dm.data_shape) == (channels, size, size)
    assert cfg.model.generator.image_size == size and cfg.model.discriminator.channels == channels
    assert str(tmp_path) in str(dm.root)
    assert dm.on_device is False and dm.hflip is False


SMALL = ["data.image_size=16", "data.batch_size=4", "logger=none", "callbacks=none"]
EXTRA = {
    "mnist": ["data.download=false"],
    "fashion_mnist": ["data.download=false", "data.hflip=true"],
    "cifar10": ["data.download=false", "data.on_device=true"],
    "folder": ["data.labels=true", "data.num_classes=3"],
}


@pytest.mark.parametrize("model", ["dcgan", "cdcgan"])
def test_fabricated_sets_build_and_serve_a_batch(model, compose, tmp_path, fab, caplog):
    caplog.set_level(logging.WARNING, logger="ganforge")
    fab.write_mnist(tmp_path, n_train=40)
    fab.write_mnist(tmp_path, folder="FashionMNIST", n_train=40)
    fab.write_cifar(tmp_path)
    fab.write_image_tree(tmp_path / "images")
    nets = cdcgan if model == "cdcgan" else dcgan
    for name, extra in EXTRA.items():
        cfg = compose([f"data={name}", f"paths.data_dir={tmp_path}", f"model={model}", *SMALL, *extra])
        objects = build(cfg)
        assert isinstance(objects["model"].generator, nets.Generator)
        dm = objects["datamodule"]
        dm.prepare_data()
        caplog.clear()
        dm.setup("fit")
        skipped = [r for r in caplog.records if r.name == "ganforge" and "skipped 2" in r.getMessage()]
        assert len(skipped) == (name == "folder")
        x, y = next(iter(dm.train_dataloader()))
        assert x.shape == (4, cfg.data.channels, 16, 16) and y.shape == (4,)
        labels = y if model == "cdcgan" else None
        assert objects["model"].discriminator(x, labels).shape == (4,)
