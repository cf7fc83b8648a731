"""src/eval.py's logic: rebuild a GAN from its checkpoint, compute the metrics, write metrics.json."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from ganforge.evaluate import evaluate
from ganforge.pipeline import ConfigError, build_module

CONF = str(Path(__file__).resolve().parents[2] / "conf")
PRDC = ("precision", "recall", "density", "coverage")


def compose_config(name: str, overrides: list[str]):
    with initialize_config_dir(CONF, version_base="1.3"):
        return compose(name, overrides=overrides)


def write_checkpoint(tmp_path, *overrides: str) -> Path:
    """What ModelCheckpoint writes for a ganforge run, reduced to what evaluation reads."""
    cfg = compose_config(
        "train",
        [
            *overrides,
            "model.generator.width=8",
            "model.discriminator.width=8",
            f"paths.root_dir={tmp_path}",
            f"paths.output_dir={tmp_path}",
        ],
    )
    module = build_module(cfg)
    state = {"g_steps": 3, "d_steps": 3, "images_seen": 192, "config": module.run_config}
    path = tmp_path / "run" / "checkpoints" / "last.ckpt"
    path.parent.mkdir(parents=True)
    torch.save({"state_dict": module.state_dict(), "ganforge": state, "global_step": 3, "epoch": 1}, path)
    return path


@pytest.fixture
def checkpoint(tmp_path) -> Path:
    return write_checkpoint(tmp_path)


def eval_config(tmp_path, *overrides: str):
    return compose_config(
        "eval",
        [f"paths.root_dir={tmp_path}", "metrics.num_fake=200", "metrics.kid_subsets=2", *overrides],
    )


def test_writes_metrics_json_beside_the_run(checkpoint, tmp_path):
    record = evaluate(eval_config(tmp_path, f"ckpt_path={checkpoint}"))
    written = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert written == json.loads(json.dumps(record))
    assert set(written["results"]) == {"fid", "is_mean", "is_std", "kid_mean", "kid_std", *PRDC}
    assert written["extractor"] == "digits_cnn" and written["n_fake"] == 200 and written["n_real"] == 1797
    assert written["checkpoint_sha256"] == hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    assert written["g_steps"] == 3 and written["split"] == "train" and "ganforge" in written
    assert "resize" in written and written["seed"] == 0
    assert written["pr_k"] == 3 and written["dc_k"] == 5 and written["prdc_n_real"] == 1797
    assert "per_class" not in written and "num_classes" not in written  # an unconditional model


def test_a_conditional_checkpoint_gets_intra_class_fid_and_class_accuracy(tmp_path, caplog):
    ckpt = write_checkpoint(tmp_path, "model=cdcgan", "model.generator.latent_dim=16")
    with caplog.at_level("INFO", logger="ganforge"):
        record = evaluate(eval_config(tmp_path, f"ckpt_path={ckpt}"))
    written = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert set(written["results"]) >= {"fid", "intra_fid", "class_accuracy", *PRDC}
    assert written["num_classes"] == 10 and written["class_accuracy_classifier"] == "digits_cnn"
    per_class = written["per_class"]
    assert len(per_class["intra_fid"]) == 10 and sum(per_class["n_fake"]) == 200
    assert sum(per_class["n_real"]) == 1797
    assert record["results"]["intra_fid"] == pytest.approx(sum(per_class["intra_fid"]) / 10)
    assert "intra_fid=" in caplog.text and "class_accuracy=" in caplog.text  # the log line


def test_out_chooses_the_file(checkpoint, tmp_path):
    out = tmp_path / "elsewhere" / "m.json"
    evaluate(eval_config(tmp_path, f"ckpt_path={checkpoint}", f"out={out}"))
    assert json.loads(out.read_text())["n_fake"] == 200


def test_missing_ckpt_path_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="ckpt_path is required"):
        evaluate(eval_config(tmp_path))
    with pytest.raises(ConfigError, match="does not exist"):
        evaluate(eval_config(tmp_path, f"ckpt_path={tmp_path / 'nope.ckpt'}"))


def test_a_checkpoint_not_from_ganforge_is_a_clear_error(tmp_path):
    path = tmp_path / "other.ckpt"
    torch.save({"state_dict": {}, "epoch": 0}, path)
    with pytest.raises(ConfigError, match="not written by ganforge"):
        evaluate(eval_config(tmp_path, f"ckpt_path={path}"))


def test_metrics_none_is_a_clear_error(checkpoint, tmp_path):
    cfg = compose_config("eval", [f"paths.root_dir={tmp_path}", "metrics=none", f"ckpt_path={checkpoint}"])
    with pytest.raises(ConfigError, match="metrics=none"):
        evaluate(cfg)


def test_inception_protocol_composes(tmp_path):
    cfg = eval_config(tmp_path, "metrics=inception", "metrics.extractor.weights=/w.pth")
    assert cfg.metrics.extractor._target_.endswith("InceptionV3Features")
    assert cfg.metrics.num_fake == 200 and cfg.metrics.extractor.weights == "/w.pth"
