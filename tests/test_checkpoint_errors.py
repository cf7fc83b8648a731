"""Bad checkpoints, named: every entry point stops before any work with a ConfigError that names
the file, the kind of problem and what to do (ganforge.checkpoint_io.read_checkpoint)."""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from cli import TINY_RUN
from hydra import compose, initialize_config_dir

import ganforge
import ganforge.pipeline
from ganforge.evaluate import evaluate
from ganforge.export import export_files
from ganforge.pipeline import ConfigError, train
from ganforge.repair import repair_files
from ganforge.sampling import write_samples

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ring(tmp_path_factory, train_tiny) -> Path:
    """A real checkpoint of model=mlp data=ring (two training batches)."""
    return train_tiny(tmp_path_factory.mktemp("ring"), "ring")


def _text(folder: Path, ring: Path) -> Path:
    (folder / "notes.ckpt").write_text("epoch: 3\nd_loss: 0.25\n")
    return folder / "notes.ckpt"


def _cut(folder: Path, ring: Path) -> Path:
    shutil.copy(ring, folder / "epoch_0000.ckpt")  # an earlier, whole checkpoint beside it
    (folder / "last.ckpt").write_bytes(ring.read_bytes()[:20_000])
    return folder / "last.ckpt"


def _cut_legacy(folder: Path, ring: Path) -> Path:
    whole = folder / "whole.pt"
    torch.save(torch.load(ring, weights_only=True), whole, _use_new_zipfile_serialization=False)
    data = whole.read_bytes()
    whole.unlink()
    (folder / "old.ckpt").write_bytes(data[: len(data) // 2])
    return folder / "old.ckpt"


def _saved(name: str, change: Callable[[dict], object]) -> Callable[[Path, Path], Path]:
    def make(folder: Path, ring: Path) -> Path:
        torch.save(change(torch.load(ring, weights_only=True)), folder / name)
        return folder / name

    return make


def _newer(ckpt: dict) -> dict:
    ckpt["ganforge"].update(format=99, version="9.0.0")
    return ckpt


def _directory(folder: Path, ring: Path) -> Path:
    shutil.copy(ring, (folder / "checkpoints").mkdir() or folder / "checkpoints" / "last.ckpt")
    return folder


# kind: (how to make the file from the ring checkpoint, what the message must say)
BAD = {
    "missing": (lambda folder, ring: folder / "missing.ckpt", ["does not exist"]),
    "directory": (_directory, ["is a directory", "checkpoints/last.ckpt"]),
    "empty": (lambda folder, ring: (folder / "empty.ckpt").touch() or folder / "empty.ckpt", ["is empty"]),
    "text": (_text, ["not a PyTorch checkpoint", "starts with text"]),
    "cut_short": (_cut, ["cut short", "earlier checkpoint", "epoch_0000.ckpt"]),
    "cut_short_legacy": (_cut_legacy, ["cut short", "unexpected EOF"]),
    "state_dict": (
        _saved("weights.pt", lambda c: c["state_dict"]),
        ["not written by ganforge", "state_dict"],
    ),
    "lightning": (
        _saved("other.ckpt", lambda c: {k: v for k, v in c.items() if k != "ganforge"}),
        ["not written by ganforge", "Lightning checkpoint"],
    ),
    "foreign_class": (
        _saved("hparams.ckpt", lambda c: {**c, "hyper_parameters": argparse.Namespace(lr=0.1)}),
        ["not written by ganforge", "argparse.Namespace"],
    ),
    "newer": (_saved("future.ckpt", _newer), [r"ganforge 9.0.0 (checkpoint format 99)", "Upgrade ganforge"]),
}


def _compose(name: str, overrides: list[str]):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(name, overrides=overrides)


def _train(path: Path, tmp: Path, compose_train) -> None:
    train(compose_train([*TINY_RUN, "model=mlp", "data=ring", f"ckpt_path={path}"], tmp / "train"))


ENTRY_POINTS: dict[str, Callable] = {
    "train": _train,
    "eval": lambda path, tmp, _: evaluate(_compose("eval", [f"ckpt_path={path}", f"paths.root_dir={tmp}"])),
    "sample": lambda path, tmp, _: write_samples(_compose("sample", [f"ckpt_path={path}"])),
    "repair": lambda path, tmp, _: repair_files(_compose("repair", [f"ckpt_path={path}"])),
    "export": lambda path, tmp, _: export_files(_compose("export", [f"ckpt_path={path}"])),
    "load": lambda path, tmp, _: ganforge.load(path),
}


@pytest.fixture
def no_work(monkeypatch):
    """Building a run, or loading weights into a GAN, fails the test: the check comes first."""

    def refuse(*args, **kwargs):
        raise AssertionError("the bad checkpoint was not refused before the work started")

    monkeypatch.setattr(ganforge.pipeline, "build", refuse)
    # sample, repair and export import it when called; eval and ganforge.load hold it already
    monkeypatch.setattr("ganforge.checkpoint.module_from_checkpoint", refuse)
    monkeypatch.setattr("ganforge.evaluate.module_from_checkpoint", refuse)


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
@pytest.mark.parametrize("kind", list(BAD))
def test_a_bad_checkpoint_is_named_at_every_entry_point(kind, entry, ring, tmp_path, compose, no_work):
    make, says = BAD[kind]
    folder = tmp_path / "ckpts"
    folder.mkdir()
    path = make(folder, ring)
    with pytest.raises(ConfigError) as info:
        ENTRY_POINTS[entry](path, tmp_path, compose)
    message = str(info.value)
    assert str(path) in message
    for words in says:
        assert words in message, message
    assert not (tmp_path / "train" / "run").exists()  # nothing of a run was written


def test_the_ring_run_records_its_group_choices_and_still_loads(ring):
    config = torch.load(ring, weights_only=True)["ganforge"]["config"]
    assert config["_choices"] == {"model": "mlp", "data": "ring", "loss": "vanilla"}
    assert ganforge.load(ring).sample(3).shape == (3, 2)


def _refused_resume(compose, overrides: list[str], ckpt: Path, monkeypatch) -> str:
    def refuse(*args, **kwargs):
        raise AssertionError("fit started")

    monkeypatch.setattr("lightning.Trainer.fit", refuse)
    with pytest.raises(ConfigError) as info:
        train(compose([*TINY_RUN, *overrides, f"ckpt_path={ckpt}"]))
    return str(info.value)


def test_resuming_another_models_checkpoint_names_both_runs(ring, compose, monkeypatch):
    tiny_dcgan = ["data.image_size=16", "model.generator.width=8", "model.discriminator.width=8"]
    message = _refused_resume(compose, ["model=dcgan", "data=digits", *tiny_dcgan], ring, monkeypatch)
    assert str(ring) in message
    assert "written by model=mlp data=ring" in message
    assert "this run is model=dcgan data=digits" in message
    assert f"python src/train.py model=mlp data=ring loss=vanilla ckpt_path={ring}" in message
    assert "drop ckpt_path" in message


def test_a_checkpoint_without_recorded_choices_is_named_from_its_class_paths(
    ring, compose, tmp_path, monkeypatch
):
    ckpt = torch.load(ring, weights_only=True)
    for key in ("_choices", "hydra"):  # as src/train.py stored it before choices were recorded
        ckpt["ganforge"]["config"].pop(key)
    old = tmp_path / "old.ckpt"
    torch.save(ckpt, old)
    message = _refused_resume(compose, ["model=dcgan", "data=digits", "data.image_size=16"], old, monkeypatch)
    assert "written by model=mlp data=ring" in message and "this run is model=dcgan data=digits" in message
    assert "data._target_ is ganforge.data.toy2d.Toy2DDataModule in the checkpoint" in message


def test_weights_of_another_size_name_the_setting_and_the_tensors(ring, compose, monkeypatch):
    message = _refused_resume(
        compose, ["model=mlp", "data=ring", "model.generator.hidden=64"], ring, monkeypatch
    )
    assert "model.generator.hidden is 128 in the checkpoint, 64 here" in message
    assert "generator.net.0.weight: [128, 2] in the checkpoint, [64, 2] here" in message
    assert (
        "python src/train.py model=mlp data=ring loss=vanilla model.generator.hidden=128 ckpt_path="
        in message
    )
