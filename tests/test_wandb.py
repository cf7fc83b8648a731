"""Weights & Biases: offline without a login, one run per job, and what the run holds.

W&B's offline run is read back from its transaction log (``run-<id>.wandb``): LevelDB's
log format (32 KiB blocks of checksummed, typed chunks) around ``wandb.proto`` records.
wandb 0.31 writes ``files/`` media there, but the summary and config only at sync time.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import pytest
from cli import TINY_DCGAN, run_train_script

from ganforge.loggers import configure_wandb, wandb_mode

ROOT = Path(__file__).resolve().parents[1]

pytest.importorskip("wandb")


@pytest.fixture
def no_login(monkeypatch, tmp_path):
    """No WANDB_MODE, no key, a HOME without ~/.netrc."""
    for name in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_BASE_URL"):
        monkeypatch.setenv(name, "")  # recorded, so a value the code under test sets is undone too
        monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    return tmp_path / "home"


def test_mode_is_offline_without_a_login(no_login, monkeypatch):
    assert wandb_mode() == "offline"
    netrc = no_login / ".netrc"
    netrc.write_text("machine api.wandb.ai\n  login user\n  password " + "0" * 40 + "\n")
    netrc.chmod(0o600)
    assert wandb_mode() == "online"
    netrc.unlink()
    monkeypatch.setenv("WANDB_API_KEY", "0" * 40)
    assert wandb_mode() == "online"
    monkeypatch.setenv("WANDB_MODE", "disabled")  # an explicit mode always wins
    assert wandb_mode() == "disabled"


def test_configure_fills_group_name_config_and_goes_offline(no_login, compose):
    cfg = compose(["logger=wandb", "loss=hinge", "seed=7"])
    configure_wandb(cfg)
    wb = cfg.logger.wandb
    assert os.environ["WANDB_MODE"] == "offline"
    assert wb.group.startswith("train:") and "loss=hinge" in wb.group and "seed" not in wb.group
    assert wb.name == f"{wb.group} seed=7"
    assert wb.config["loss"]["objective"]["_target_"] == "ganforge.losses.HingeLoss"
    assert "logger" not in wb.config and "hydra" not in wb.config
    assert list(wb.tags) == list(cfg.tags)


def test_configure_leaves_other_loggers_alone(no_login, compose):
    cfg = compose(["logger=csv"])
    configure_wandb(cfg)
    assert "WANDB_MODE" not in os.environ


# ---------------------------------------------------------------------- an offline sweep end to end
def _records(path: Path):
    """The protobuf records of a W&B transaction log (LevelDB log format, header ':W&B' + 3 bytes)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, block, pos, chunks = path.read_bytes(), 32768, 7, b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # a block's tail too short for a chunk header is padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if length == 0 and kind == 0:
            pos += left
            continue
        chunks += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # FULL or LAST
            record = pb.Record()
            record.ParseFromString(chunks)
            chunks = b""
            yield record


def _read_run(run_dir: Path) -> dict:
    (log,) = run_dir.glob("run-*.wandb")
    out = {"history": [], "config": {}}
    for record in _records(log):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            out["group"], out["name"] = record.run.run_group, record.run.display_name
            out["tags"], out["project"] = list(record.run.tags), record.run.project
            out["config"] |= {i.key: json.loads(i.value_json) for i in record.run.config.update}
        elif kind == "config":
            out["config"] |= {i.key: json.loads(i.value_json) for i in record.config.update}
        elif kind == "history":
            row: dict = {}
            for item in record.history.item:  # media arrive as nested keys: samples -> _type, filenames, ...
                *parents, leaf = list(item.nested_key) or [item.key]
                node = row
                for key in parents:
                    node = node.setdefault(key, {})
                node[leaf] = json.loads(item.value_json)
            out["history"].append(row)
    return out


def test_offline_sweep_logs_metrics_images_and_config_per_job(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env["HOME"] = str(home)
    sweep = tmp_path / "sweep"
    args = [
        "-m",
        "seed=1,2",
        "logger=wandb",
        *TINY_DCGAN,
        "+trainer.limit_train_batches=3",
        "trainer.max_epochs=1",
        "trainer.log_every_n_steps=1",
        "callbacks.rich_progress_bar.refresh_rate=0",
        "metrics.num_fake=64",
        "metrics.kid_subsets=5",
        "metrics.kid_subset_size=32",
        f"hydra.sweep.dir={sweep}",
    ]
    proc = run_train_script(args, tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    output = proc.stdout + proc.stderr
    assert "logging offline" in output and output.count("upload it with: wandb sync") == 2
    runs = []
    for job, seed in (("0", 1), ("1", 2)):
        (run_dir,) = (sweep / job / "wandb").glob("offline-run-*")  # one W&B run per job
        run = _read_run(run_dir)
        runs.append(run)
        assert run["project"] == "ganforge" and run["tags"] == ["dev"]
        assert run["name"].endswith(f"seed={seed}")
        assert run["config"]["seed"] == seed
        assert run["config"]["model"]["_target_"] == "ganforge.modules.gan.GAN"
        logged = {k for row in run["history"] for k in row}
        assert {"train/d_loss", "train/g_loss", "val/fid", "trainer/global_step"} <= logged
        images = [row["samples"] for row in run["history"] if "samples" in row]
        assert images and images[0]["_type"] == "images/separated"
        assert (run_dir / "files" / images[0]["filenames"][0]).is_file()  # the PNG itself
    assert runs[0]["group"] == runs[1]["group"] and "seed" not in runs[0]["group"]  # repeats side by side
