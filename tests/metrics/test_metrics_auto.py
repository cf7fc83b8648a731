"""metrics=auto, the default: digits for gray data, Inception for RGB when it can, else one warning."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
import torch_fidelity.feature_extractor_inceptionv3 as fe
from hydra.utils import instantiate
from PIL import Image

from ganforge.metrics.callback import ImageMetrics
from ganforge.metrics.extractors import inception
from ganforge.metrics.extractors.digits import DigitsFeatures
from ganforge.metrics.extractors.inception import WEIGHTS_FILE, InceptionV3Features
from ganforge.pipeline import build, train


@pytest.fixture
def no_downloads(monkeypatch, tmp_path):
    """Offline: any download attempt fails the test; torch hub's folder is under tmp_path and empty."""

    def refuse(*args, **kwargs):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(fe, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(inception, "_online", lambda *a, **k: False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    return tmp_path / "hub" / "checkpoints" / WEIGHTS_FILE


@pytest.fixture
def photos(tmp_path) -> Path:
    """Twelve small RGB PNGs."""
    root = tmp_path / "photos"
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):
        Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(root / f"{i}.png")
    return root


def folder(photos: Path) -> list[str]:
    return [
        "data=folder",
        f"data.root={photos}",
        "data.image_size=16",
        "data.batch_size=4",
        "model.generator.width=8",
        "model.discriminator.width=8",
        "model.generator.latent_dim=16",
    ]


def metrics_warnings(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "ganforge" and r.levelno >= logging.WARNING]


def test_default_is_auto_and_composes_both_protocols(compose):
    cfg = compose(["metrics.digits.num_fake=500"])
    assert cfg.hydra.runtime.choices.metrics == "auto"
    assert cfg.metrics.channels == 1
    assert cfg.metrics.digits.num_fake == 500 and cfg.metrics.inception.num_fake == 10000
    assert cfg.metrics.digits.extractor._target_.endswith("DigitsFeatures")
    assert cfg.metrics.inception.extractor._target_.endswith("InceptionV3Features")


def test_auto_on_digits_is_the_digits_protocol(compose, caplog):
    cfg = compose(["metrics.digits.num_fake=500", "metrics.seed=3"])
    with caplog.at_level(logging.INFO, logger="ganforge"):
        callback = instantiate(cfg.callbacks.metrics)
    assert isinstance(callback, ImageMetrics) and isinstance(callback.evaluator.extractor, DigitsFeatures)
    assert callback.evaluator.num_fake == 500  # metrics.digits.* reaches the digits protocol
    assert callback.evaluator.seed == 3  # a top-level shortcut reaches the chosen one
    assert callback.evaluator.batch_size == cfg.metrics.digits.batch_size  # 'auto': its own value
    assert not metrics_warnings(caplog)


def test_shortcuts_set_the_chosen_protocol_and_explicit_null_means_null(compose):
    cfg = compose(["metrics.num_fake=64", "metrics.cache_dir=null", "metrics.every_n_epochs=0"])
    callback = instantiate(cfg.callbacks.metrics)
    assert callback.evaluator.num_fake == 64 and callback.evaluator.cache_dir is None
    assert callback.every_n_epochs == 0
    searched = compose(["hparams_search=digits_optuna"])  # sets metrics.every_n_epochs: 0 in its file
    assert instantiate(searched.metrics).every_n_epochs == 0


def test_every_option_the_protocols_share_has_a_shortcut(compose):
    cfg = compose([])
    shared = (set(cfg.metrics.digits) & set(cfg.metrics.inception)) - {"_target_", "extractor"}
    missing = shared - set(cfg.metrics)
    assert not missing, f"add {sorted(missing)} to conf/metrics/auto.yaml as '<key>: auto'"


def test_auto_on_points_builds_nothing(compose):
    callback = instantiate(compose(["data=ring", "model=mlp"]).callbacks.metrics)
    assert isinstance(callback, ImageMetrics) and callback.evaluator is None


def test_rgb_folder_without_weights_trains_with_one_warning(compose, photos, no_downloads, caplog):
    cfg = compose([*folder(photos), "logger=none", "trainer.limit_train_batches=2"])
    with caplog.at_level(logging.INFO, logger="ganforge"):
        _, objects = train(cfg)
    assert objects["model"].g_steps == 2  # training went ahead
    (callback,) = [c for c in objects["callbacks"] if isinstance(c, ImageMetrics)]
    assert callback.evaluator is None and callback.last is None  # metrics off
    (warning,) = metrics_warnings(caplog)
    message = warning.getMessage()
    assert "FID/IS/KID are OFF" in message and str(no_downloads) in message and "metrics=none" in message
    assert "metrics.inception.extractor.weights" in message
    assert not (Path(objects["trainer"].default_root_dir) / "metrics.jsonl").exists()


def test_downloads_disabled_say_so(compose, photos, no_downloads, caplog):
    cfg = compose([*folder(photos), "metrics.inception.extractor.allow_download=false"])
    with caplog.at_level(logging.WARNING, logger="ganforge"):
        assert instantiate(cfg.callbacks.metrics).evaluator is None
    (warning,) = metrics_warnings(caplog)
    assert "allow_download=false" in warning.getMessage()


def test_rgb_folder_with_weights_on_disk_is_inception(
    compose, photos, no_downloads, random_inception_weights, caplog
):
    no_downloads.parent.mkdir(parents=True)
    no_downloads.write_bytes(random_inception_weights.read_bytes())
    cfg = compose([*folder(photos), "metrics.num_fake=8"])
    with caplog.at_level(logging.WARNING, logger="ganforge"):
        callback = instantiate(cfg.callbacks.metrics)
    assert isinstance(callback.evaluator.extractor, InceptionV3Features)
    assert callback.evaluator.extractor.weights_path == str(no_downloads)
    assert callback.evaluator.num_fake == 8 and callback.evaluator.num_real == cfg.metrics.inception.num_real
    assert not metrics_warnings(caplog)


def test_a_weights_file_named_by_hand_must_exist(compose, photos, no_downloads, tmp_path):
    cfg = compose([*folder(photos), f"metrics.inception.extractor.weights={tmp_path / 'absent.pth'}"])
    with pytest.raises(Exception, match=WEIGHTS_FILE):  # Hydra wraps the extractor's error
        instantiate(cfg.callbacks.metrics)


def test_explicit_inception_without_weights_still_stops_before_training(compose, photos, no_downloads):
    cfg = compose([*folder(photos), "metrics=inception"])
    with pytest.raises(Exception, match=WEIGHTS_FILE):
        build(cfg)


def test_explicit_choices_and_experiments_are_unchanged(compose):
    assert compose(["metrics=digits"]).metrics.num_fake == 2000
    assert compose(["metrics=none"]).metrics == {}
    preset = compose(["experiment=dcgan_cifar10"])
    assert preset.hydra.runtime.choices.metrics == "inception"
    assert preset.metrics.extractor._target_.endswith("InceptionV3Features")


def test_eval_with_auto_asks_for_an_explicit_protocol(tmp_path):
    from hydra import compose, initialize_config_dir

    conf = Path(__file__).resolve().parents[2] / "conf"
    with initialize_config_dir(str(conf), version_base="1.3"):
        cfg = compose("eval", overrides=["metrics=auto", f"paths.root_dir={tmp_path}"])
    with pytest.raises(Exception, match="pass metrics=digits or metrics=inception"):  # wrapped by Hydra
        instantiate(cfg.metrics)
