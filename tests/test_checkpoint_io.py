"""Atomic checkpoint writes: a failed or killed write leaves the previous checkpoint whole."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from cli import TINY_RUN
from hydra.utils import instantiate

import ganforge
from ganforge.checkpoint_io import AtomicCheckpointIO, atomic_torch_save
from ganforge.pipeline import train
from ganforge.strategy import GANDDPStrategy

ROOT = Path(__file__).resolve().parents[1]


def test_an_exception_during_the_write_leaves_the_previous_file_and_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "checkpoints" / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"version": 1, "w": torch.arange(10)}, path)  # creates the folder
    before = path.read_bytes()
    real_save = torch.save

    def save_then_fail(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 the first bytes of a checkpoint")
        raise RuntimeError("disk full")

    monkeypatch.setattr(torch, "save", save_then_fail)
    with pytest.raises(RuntimeError, match="disk full"):
        AtomicCheckpointIO().save_checkpoint({"version": 2, "w": torch.arange(20)}, path)
    with pytest.raises(RuntimeError, match="disk full"):
        atomic_torch_save({"version": 2}, path)
    monkeypatch.setattr(torch, "save", real_save)
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]
    assert torch.load(path, weights_only=True)["version"] == 1


def test_storage_options_are_refused_as_lightning_does(tmp_path):
    with pytest.raises(TypeError, match="storage_options"):
        AtomicCheckpointIO().save_checkpoint({}, tmp_path / "x.ckpt", storage_options={"a": 1})


# A child that overwrites one checkpoint of ~40 MB again and again; the marker says that
# save number `step` is complete.
WRITER = """
import sys, torch
from pathlib import Path
from ganforge.checkpoint_io import AtomicCheckpointIO
path, marker = Path(sys.argv[1]), Path(sys.argv[2])
io = AtomicCheckpointIO()
step = 0
while True:
    io.save_checkpoint({"step": step, "w": torch.full((10_000_000,), float(step))}, path)
    marker.write_text(str(step))
    step += 1
"""


def test_a_run_killed_in_the_middle_of_a_write_leaves_a_whole_checkpoint(tmp_path):
    path, marker = tmp_path / "last.ckpt", tmp_path / "saved"
    child = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), str(marker)],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stderr=subprocess.PIPE,
    )
    temp = tmp_path / f".last.ckpt.tmp-{child.pid}"
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():  # one save complete
            assert child.poll() is None, child.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the writer never finished a save"
            time.sleep(0.01)
        while not temp.exists():  # the next one under way: the kill lands in the middle of it
            assert time.monotonic() < deadline, "the writer never started another save"
            time.sleep(0.001)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    assert ckpt["w"].shape == (10_000_000,)
    assert torch.equal(ckpt["w"], torch.full_like(ckpt["w"], float(ckpt["step"])))
    assert 0 <= ckpt["step"] <= int(marker.read_text()) + 1
    assert sorted(p.name for p in tmp_path.glob("*.ckpt")) == ["last.ckpt"]  # the temp file is no .ckpt


def test_every_training_run_writes_its_checkpoints_atomically(compose, tmp_path):
    cfg = compose(
        [
            *(o for o in TINY_RUN if o != "callbacks=none"),
            "model=mlp",
            "data=ring",
            "callbacks=model_checkpoint",
            "callbacks.model_checkpoint.every_n_epochs=1",
        ]
    )
    _, objects = train(cfg)
    assert type(objects["trainer"].strategy.checkpoint_io) is AtomicCheckpointIO
    folder = Path(cfg.paths.output_dir) / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == ["epoch_0000.ckpt", "last.ckpt"]  # no temp file left
    for ckpt in folder.iterdir():
        assert ganforge.load(ckpt).g_steps == objects["model"].g_steps


@pytest.mark.parametrize("trainer", ["ddp", "ddp_sim"])
def test_the_ddp_strategy_gets_the_atomic_writer_too(compose, trainer):
    cfg = compose([f"trainer={trainer}", "trainer.accelerator=cpu", "trainer.devices=2"])
    built = instantiate(cfg.trainer)
    assert type(built.strategy) is GANDDPStrategy
    assert type(built.strategy.checkpoint_io) is AtomicCheckpointIO


def test_a_write_removes_temporaries_that_killed_writers_left(tmp_path):
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead = tmp_path / f".last.ckpt.tmp-{int(gone.stdout)}"  # its writer has exited
    live = tmp_path / f".last.ckpt.tmp-{os.getppid()}"  # a write still in progress elsewhere
    other = tmp_path / f".epoch_0001.ckpt.tmp-{int(gone.stdout)}"  # another file's: not ours to judge
    for f in (dead, live, other):
        f.write_bytes(b"partial")
    atomic_torch_save({"w": torch.ones(2)}, tmp_path / "last.ckpt")
    assert not dead.exists() and live.exists() and other.exists()
    assert torch.equal(torch.load(tmp_path / "last.ckpt", weights_only=True)["w"], torch.ones(2))
