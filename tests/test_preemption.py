"""Preemption: a signal mid-epoch -> checkpoint at the batch's end -> exact resume.

Every run is a child process of ``src/train.py`` (one torch thread each, so the three
runs of a case compute alike). The signalled run sends itself the signal from a test
callback (``preempt_worker.SignalAt``) at a chosen batch; the handler under test is the
run's own.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import torch
from cli import TINY_DCGAN, run_train_script

TESTS = Path(__file__).resolve().parent

CASES = {
    # DataLoader path, flips drawn on the step's side, a stepped scheduler
    "dcgan-digits-hflip": [
        *TINY_DCGAN,
        "data.hflip=true",
        "+trainer.limit_train_batches=6",
        "+model.g_scheduler._target_=torch.optim.lr_scheduler.StepLR",
        "+model.g_scheduler._partial_=true",
        "+model.g_scheduler.step_size=2",
    ],
    # fresh draws each batch, a gradient penalty, several minibatches per loader batch
    "mlp-ring-wgan_gp": ["model=mlp", "data=ring", "data.samples_per_epoch=12288", "loss=wgan_gp"],
}
# (data.on_device=true resumes alike: tests/data/test_resumable.py, without a run of its own)
COMMON = [
    "trainer.max_epochs=2",
    "trainer.log_every_n_steps=2",
    "metrics=none",
    "logger=csv",
    "callbacks.rich_progress_bar.refresh_rate=0",
    "callbacks.samples.every_n_epochs=100",
]


def _run(args: list[str], cwd: Path, run_dir: Path, env: dict | None = None):
    env = {**os.environ, "PYTHONPATH": str(TESTS), **(env or {})}
    return run_train_script([*args, *COMMON, f"hydra.run.dir={run_dir}"], cwd, timeout=240, env=env)


def _signal_at(epoch: int, batch: int, name: str = "SIGTERM") -> list[str]:
    return [
        "+callbacks.signal_at._target_=preempt_worker.SignalAt",
        f"+callbacks.signal_at.epoch={epoch}",
        f"+callbacks.signal_at.batch={batch}",
        f"+callbacks.signal_at.name={name}",
    ]


def _load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def _assert_same_training_state(a: dict, b: dict) -> None:
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for k, v in a["state_dict"].items():
        assert torch.equal(v, b["state_dict"][k]), f"{k} differs after the mid-epoch resume"
    for i, (oa, ob) in enumerate(zip(a["optimizer_states"], b["optimizer_states"], strict=True)):
        for pid, st in oa["state"].items():
            for k, v in st.items():
                assert torch.equal(torch.as_tensor(v), torch.as_tensor(ob["state"][pid][k])), (
                    f"opt{i}.{pid}.{k}"
                )
    assert a["ganforge"]["steps"] == b["ganforge"]["steps"]
    assert a["ganforge"]["images"] == b["ganforge"]["images"]
    assert a["global_step"] == b["global_step"]
    assert torch.equal(a["ganforge"]["rng"]["torch"], b["ganforge"]["rng"]["torch"])


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """Each case trained 2 epochs without a stop: its last checkpoint, by case."""
    out = {}

    def get(case: str) -> dict:
        if case not in out:
            cwd = tmp_path_factory.mktemp(f"full-{case}")
            proc = _run(CASES[case], cwd, cwd / "run")
            assert proc.returncode == 0, proc.stderr[-3000:]
            out[case] = _load(cwd / "run" / "checkpoints" / "last.ckpt")
        return out[case]

    return get


@pytest.mark.parametrize("case", list(CASES))
def test_sigterm_mid_epoch_then_resume_equals_uninterrupted(case, uninterrupted, tmp_path):
    stopped = tmp_path / "stopped"
    proc = _run([*CASES[case], *_signal_at(epoch=0, batch=2)], tmp_path, stopped)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Received SIGTERM" in proc.stdout + proc.stderr
    ckpt = stopped / "checkpoints" / "last.ckpt"
    state = _load(ckpt)
    # stopped at the end of the batch after the signal: epoch 0, mid-epoch
    assert state["epoch"] == 0
    loader_state = state["loops"]["fit_loop"]["state_dict"]["combined_loader"][0]
    assert loader_state["epoch"] == 0 and loader_state["position"] == 4
    assert not list(stopped.glob("checkpoints/epoch_*.ckpt"))  # no epoch ended

    resumed = tmp_path / "resumed"
    proc = _run([*CASES[case], f"ckpt_path={ckpt}"], tmp_path, resumed)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "not resumable" not in proc.stderr
    _assert_same_training_state(uninterrupted(case), _load(resumed / "checkpoints" / "last.ckpt"))


def test_slurm_time_limit_signal_requeues_and_the_requeued_job_resumes_by_itself(uninterrupted, tmp_path):
    # SLURM as a job sees it: its variables, and an scontrol on PATH (here one that notes its call)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "scontrol_calls"
    scontrol = bin_dir / "scontrol"
    scontrol.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    scontrol.chmod(scontrol.stat().st_mode | stat.S_IEXEC)
    slurm = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "SLURM_JOB_ID": "4242",
        "SLURM_JOB_NAME": "ganforge",
        "SLURM_NTASKS": "1",
        "SLURM_NTASKS_PER_NODE": "1",
        "SLURM_PROCID": "0",
        "SLURM_LOCALID": "0",
        "SLURM_NODEID": "0",
        "SLURM_NODELIST": "localhost",
    }
    case = "dcgan-digits-hflip"
    run_dir = tmp_path / "job"
    proc = _run([*CASES[case], *_signal_at(epoch=1, batch=1, name="SIGUSR1")], tmp_path, run_dir, slurm)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert calls.read_text().split() == ["requeue", "4242"]  # through Lightning's SLURMEnvironment
    assert sorted(p.name for p in run_dir.glob("hpc_ckpt_*.ckpt"))  # what a requeued job resumes from

    # the requeued job: same command, same run directory, no ckpt_path
    proc = _run(CASES[case], tmp_path, run_dir, slurm)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "hpc_ckpt" in proc.stdout + proc.stderr  # Lightning said where it restored from
    _assert_same_training_state(uninterrupted(case), _load(run_dir / "checkpoints" / "last.ckpt"))


@pytest.mark.ddp
def test_under_ddp_a_signal_to_one_rank_stops_both_at_one_batch_and_resumes_exactly(tmp_path):
    ddp = [
        *TINY_DCGAN,
        "trainer=ddp_sim",
        "+trainer.limit_train_batches=6",
        "callbacks.preemption.sync_every=2",  # the ranks agree every 2 batches
    ]
    full = _run(ddp, tmp_path, tmp_path / "full")
    assert full.returncode == 0, full.stderr[-3000:]

    stopped = tmp_path / "stopped"
    proc = _run([*ddp, *_signal_at(epoch=1, batch=2)], tmp_path, stopped)  # rank 0 only
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = _load(stopped / "checkpoints" / "last.ckpt")
    # signalled after batch 2 (index): both ranks stopped at the next agreement, batch 4
    assert state["epoch"] == 1 and state["global_step"] == 6 + 4
    assert state["loops"]["fit_loop"]["state_dict"]["combined_loader"][0] == {"epoch": 1, "position": 4}

    resumed = tmp_path / "resumed"
    proc = _run([*ddp, f"ckpt_path={stopped / 'checkpoints' / 'last.ckpt'}"], tmp_path, resumed)
    assert proc.returncode == 0, proc.stderr[-3000:]
    _assert_same_training_state(
        _load(tmp_path / "full" / "checkpoints" / "last.ckpt"), _load(resumed / "checkpoints" / "last.ckpt")
    )
