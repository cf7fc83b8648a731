"""Hydra multirun, Optuna searches and the submitit launchers, through the command line.

Each sweep runs in a subprocess (``src/train.py -m ...``) with tiny nets and a few
batches; the sweep directory must hold one run directory per job and the summary
table ``ganforge.hydra_callbacks.SweepSummary`` writes.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from cli import TINY_DCGAN, run_train_script

from ganforge.hydra_callbacks import write_summary

ROOT = Path(__file__).resolve().parents[1]

TINY = [
    *TINY_DCGAN,
    "+trainer.limit_train_batches=3",
    "trainer.max_epochs=1",
    "callbacks.rich_progress_bar.refresh_rate=0",
]
TINY_METRICS = [
    "metrics.num_fake=64",
    "metrics.batch_size=64",
    "metrics.kid_subsets=5",
    "metrics.kid_subset_size=32",
]


def run_sweep(args: list[str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "WANDB_MODE"}
    return run_train_script(args, cwd, timeout, env=env)


def _summary(sweep: Path) -> list[dict[str, str]]:
    with (sweep / "summary.csv").open() as f:
        return list(csv.DictReader(f))


def test_multirun_gives_a_run_per_job_and_a_summary(tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_sweep(
        ["-m", "loss=vanilla,hinge", "seed=1,2", *TINY, *TINY_METRICS, f"hydra.sweep.dir={sweep}"], tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    for job in range(4):
        assert (sweep / str(job) / "checkpoints" / "last.ckpt").is_file()
        assert (sweep / str(job) / "samples" / "last.png").is_file()
    rows = _summary(sweep)
    assert [(r["job"], r["loss"], r["seed"]) for r in rows] == [
        ("0", "vanilla", "1"),
        ("1", "vanilla", "2"),
        ("2", "hinge", "1"),
        ("3", "hinge", "2"),
    ]
    for row in rows:  # the table holds each job's own final numbers
        final = json.loads((sweep / row["job"] / "final_metrics.json").read_text())
        assert float(row["val/fid"]) == pytest.approx(final["val/fid"])
    md = (sweep / "summary.md").read_text().splitlines()
    assert md[0].startswith("| job | loss | seed | val/fid") and len(md) == 2 + 4


def test_optuna_search_minimises_fid(tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_sweep(
        [
            "hparams_search=digits_optuna",
            "hydra.sweeper.n_trials=2",
            *TINY,
            *TINY_METRICS,
            f"hydra.sweep.dir={sweep}",
        ],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    rows = _summary(sweep)
    assert len(rows) == 2 and all((sweep / r["job"] / "checkpoints" / "last.ckpt").is_file() for r in rows)
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert results["best_value"] == pytest.approx(min(float(r["val/fid"]) for r in rows))
    assert set(results["best_params"]) == {
        "loss",
        "model.g_optimizer.lr",
        "model.d_optimizer.lr",
        "model.ema_decay",
    }


def test_submitit_local_launcher_runs_a_job(tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_sweep(
        [
            "-m",
            "hydra/launcher=submitit_local",
            "hydra.launcher.timeout_min=5",
            "seed=3",
            *TINY,
            "metrics=none",
            f"hydra.sweep.dir={sweep}",
        ],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert (sweep / "0" / "checkpoints" / "last.ckpt").is_file()
    assert list((sweep / ".submitit").rglob("*_result.pkl"))  # it ran in submitit's own process
    assert [r["seed"] for r in _summary(sweep)] == ["3"]


@pytest.mark.ddp
def test_multirun_of_ddp_jobs_keeps_each_job_in_its_directory(tmp_path):
    # each job starts its own 2 processes; the children run that job, not the sweep
    sweep = tmp_path / "sweep"
    proc = run_sweep(
        ["-m", "seed=1,2", "trainer=ddp_sim", *TINY, "metrics=none", f"hydra.sweep.dir={sweep}"], tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "1"]
    for job in ("0", "1"):
        assert (sweep / job / "checkpoints" / "last.ckpt").is_file()
        assert (sweep / job / "train.log").read_text().count("Run directory") == 1
    assert [r["seed"] for r in _summary(sweep)] == ["1", "2"]
    assert not (tmp_path / "outputs").exists()  # no child wrote a run directory of its own


def test_slurm_launcher_follows_the_trainer(compose):
    cfg = compose(
        [
            "hydra/launcher=slurm",
            "trainer=ddp",
            "trainer.devices=4",
            "trainer.num_nodes=2",
            "hydra.launcher.partition=gpu",
        ]
    )
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.nodes, launcher.gpus_per_node, launcher.tasks_per_node) == (2, 4, 4)
    assert launcher.partition == "gpu" and launcher.timeout_min > 0


def test_toy_search_minimises_mode_kl(compose):
    cfg = compose(["hparams_search=ring_optuna"])
    assert cfg.optimized_metric == "toy/kl"
    assert cfg.data.kind == "ring" and cfg.model.generator._target_ == "ganforge.nets.mlp.Generator"
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper") and sweeper.storage is None
    assert sweeper.direction == "minimize" and str(cfg.hydra.mode) == "RunMode.MULTIRUN"
    # a trial is the toy experiments' budget in generator steps (the same for every loss:
    # tests/test_search_budgets.py), not the digits run's 40 epochs
    toy = compose(["experiment=toy_ring"])
    assert cfg.trainer.max_steps == toy.trainer.max_steps == 10000
    assert cfg.trainer.max_epochs == toy.trainer.max_epochs == -1


def test_summary_lists_varying_overrides_and_every_metric(tmp_path):
    for job, (lr, fid) in enumerate([("0.0002", 50.0), ("0.001", 40.0)]):
        d = tmp_path / str(job)
        (d / ".hydra").mkdir(parents=True)
        (d / ".hydra" / "overrides.yaml").write_text(
            yaml.safe_dump([f"model.g_optimizer.lr={lr}", "data=digits"])
        )
        (d / "final_metrics.json").write_text(json.dumps({"val/fid": fid, "train/d_loss": 1.0}))
    (tmp_path / "2").mkdir()  # a job that failed wrote no metrics
    write_summary(tmp_path, first="val/fid")
    rows = _summary(tmp_path)
    assert list(rows[0]) == ["job", "model.g_optimizer.lr", "val/fid", "train/d_loss"]
    assert [(r["job"], r["val/fid"]) for r in rows] == [("0", "50.0"), ("1", "40.0")]
