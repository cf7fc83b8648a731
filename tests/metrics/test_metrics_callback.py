"""The callback in tiny Lightning runs: logs val/* for ModelCheckpoint, appends metrics.jsonl, skips 2-D data."""

from __future__ import annotations

import json

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn
from torch.utils.data import DataLoader

from ganforge.data.digits import DigitsDataModule
from ganforge.metrics.callback import ImageMetrics


class TinyGAN(L.LightningModule):
    """Trains nothing that matters; samples real digits picked by the caller's generator."""

    def __init__(self, images: torch.Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))
        self.register_buffer("images", images)
        self.g_steps = 0

    def training_step(self, batch, batch_idx):
        self.g_steps += 1
        return self.w.pow(2) + 0.0 * batch[0].sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def sample(self, n, labels=None, generator=None):
        idx = torch.randint(len(self.images), (n,), generator=generator)
        return self.images[idx.to(self.device)]


def run(tmp_path, datamodule, callback, epochs=3, extra=()):
    trainer = L.Trainer(
        max_epochs=epochs,
        limit_train_batches=1,
        accelerator="cpu",
        logger=False,
        callbacks=[callback, *extra],
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(TinyGAN(torch.rand(50, 1, 32, 32) * 2 - 1), datamodule=datamodule)
    return trainer


def metrics_callback(digits_extractor, tmp_path, every_n_epochs):
    return ImageMetrics(
        digits_extractor,
        num_fake=100,
        every_n_epochs=every_n_epochs,
        kid_subsets=2,
        kid_subset_size=50,
        cache_dir=tmp_path / "cache",
    )


def test_logs_every_n_epochs_and_at_the_end(digits_extractor, tmp_path):
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", monitor="val/fid", mode="min")
    trainer = run(
        tmp_path,
        DigitsDataModule(batch_size=64),
        metrics_callback(digits_extractor, tmp_path, every_n_epochs=2),
        extra=[checkpoint],
    )
    for key in ("val/fid", "val/is_mean", "val/is_std", "val/kid_mean", "val/kid_std"):
        assert key in trainer.callback_metrics
    for key in ("val/precision", "val/recall", "val/density", "val/coverage"):
        assert key in trainer.callback_metrics
    assert checkpoint.best_model_score is not None
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2]  # epoch 2 of 3 (every 2), then the end of fit
    record = lines[-1]
    assert record["results"]["fid"] == pytest.approx(float(trainer.callback_metrics["val/fid"]), rel=1e-6)
    assert record["extractor"] == "digits_cnn" and record["n_real"] == 1797 and record["n_fake"] == 100
    assert record["resolution"] == [1, 32, 32] and record["seed"] == 0 and record["g_steps"] == 3


def test_only_at_the_end_when_every_n_epochs_is_zero(digits_extractor, tmp_path):
    run(
        tmp_path,
        DigitsDataModule(batch_size=64),
        metrics_callback(digits_extractor, tmp_path, every_n_epochs=0),
    )
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 1


class Points(L.LightningDataModule):
    image_size = None

    def train_dataloader(self):
        return DataLoader(torch.utils.data.TensorDataset(torch.randn(64, 2)), batch_size=32)


def test_no_op_for_data_that_are_not_images(digits_extractor, tmp_path):
    trainer = run(
        tmp_path, Points(), metrics_callback(digits_extractor, tmp_path, every_n_epochs=1), epochs=2
    )
    assert "val/fid" not in trainer.callback_metrics
    assert not (tmp_path / "metrics.jsonl").exists()


def test_a_fit_ending_between_evaluations_still_gets_final_numbers(digits_extractor, tmp_path, monkeypatch):
    # e.g. a stop the epoch-end check does not foresee: on_train_end evaluates what was left
    monkeypatch.setattr(ImageMetrics, "_last_epoch", staticmethod(lambda trainer: False))
    trainer = run(
        tmp_path,
        DigitsDataModule(batch_size=64),
        metrics_callback(digits_extractor, tmp_path, every_n_epochs=0),
    )
    assert "val/fid" in trainer.callback_metrics
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 1


class TinyConditionalGAN(TinyGAN):
    """A conditional module (``num_classes``) that samples real digits of the requested classes."""

    num_classes = 10

    def __init__(self, images: torch.Tensor, targets: torch.Tensor) -> None:
        super().__init__(images)
        from metrics_stubs import LabelledDigits

        self.stub = LabelledDigits(images, targets)

    def sample(self, n, labels=None, generator=None):
        return self.stub.sample(n, labels, generator)


def test_a_conditional_module_gets_per_class_metrics(digits_extractor, tmp_path):
    data = DigitsDataModule(batch_size=64)
    data.setup("fit")
    callback = metrics_callback(digits_extractor, tmp_path, every_n_epochs=0)
    trainer = L.Trainer(
        max_epochs=1,
        limit_train_batches=1,
        accelerator="cpu",
        logger=False,
        callbacks=[callback],
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(TinyConditionalGAN(data.real_samples(), data.train_set.y), datamodule=data)
    assert {"val/intra_fid", "val/class_accuracy"} <= set(trainer.callback_metrics)
    assert float(trainer.callback_metrics["val/class_accuracy"]) > 0.9
    record = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])
    assert len(record["per_class"]["intra_fid"]) == 10 and sum(record["per_class"]["n_fake"]) == 100
    assert record["num_classes"] == 10 and record["results"]["intra_fid"] > 0
