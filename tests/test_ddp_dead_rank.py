"""A dead or hung DDP rank ends the run: every other process exits non-zero, soon, naming the cause.

Each case runs the command line on 2 gloo processes (``trainer=ddp_sim``, the 2-D ring
toy) with ``ddp_worker_die.DieAt``, which makes one rank exit or hang at the start of
batch 3. The run goes under a supervisor: this file run as a script, the child
subreaper of a new session, so it sees every process of the run end, rank 1 included
when rank 0 is the one that died and rank 1 was orphaned. The test reads how long each
survivor took from the death or hang to its exit (measured on 2 shared CPU cores:
~2.7 s after a death, the collective timeout + ~4.5 s after a hang), and kills the
session's process group whatever happens, so that no rank outlives a test.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

# nothing from ganforge, Lightning or Hydra at the top: the supervisor (this file run as a
# script) would spend seconds importing them
ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent


def two_ranks(test):
    """A test that trains on 2 gloo processes under the supervisor."""
    linux_only = pytest.mark.skipif(
        sys.platform != "linux", reason="the supervisor is a Linux child subreaper"
    )
    return pytest.mark.ddp(linux_only(test))


TOY = [
    "model=mlp",
    "data=ring",
    "data.batch_size=64",
    "data.steps_per_batch=1",
    "data.samples_per_epoch=2560",  # 20 batches on each of 2 ranks
    "trainer=ddp_sim",
    "trainer.max_epochs=1",
    "callbacks=none",
    "logger=none",
    "metrics=none",
    "+callbacks.die._target_=ddp_worker_die.DieAt",
    "+callbacks.die.batch=3",
]
# from a rank's death to the others' exit: ~2.7 s measured (the error is raised within
# 0.1 s, the rest is teardown and interpreter exit); after a hang, from the timeout
DEATH_BOUND_S = 15.0
AFTER_TIMEOUT_BOUND_S = 15.0
# the hang case's collective timeout. It is also how long rank 0 waits at start for rank 1
# to join (~10 s on an idle machine: rank 1 imports torch and Lightning): shorter fails on
# a busy one
HANG_TIMEOUT_S = 30
DIED = "another DDP rank died (its connection closed)"
# Lightning's child observer polls rank 0's children every 5 s: if it polls between rank
# 1's death and rank 0's error (~0.1 s), it SIGKILLs rank 0 first, with this message
OBSERVER = "terminated with code 1. Forcefully terminating all other processes"


def supervise(report: Path, deadline_s: float, command: list[str]) -> None:
    """Run ``command``; write when each process of it ended (orphans included) to ``report``."""
    pr_set_child_subreaper = 36
    if ctypes.CDLL(None, use_errno=True).prctl(pr_set_child_subreaper, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")
    ended: dict[int, dict] = {}
    started = time.time()
    child = subprocess.Popen(command)  # our stdout and stderr: every rank's
    deadline, all_ended = time.monotonic() + deadline_s, False
    while time.monotonic() < deadline:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:  # none left: every process of the run has ended
            all_ended = True
            break
        if pid == 0:
            time.sleep(0.02)
        else:
            ended[pid] = {"returncode": os.waitstatus_to_exitcode(status), "time": time.time()}
    child.returncode = ended.get(child.pid, {}).get("returncode")  # reaped above
    report.write_text(json.dumps({"started": started, "ended": ended, "all_ended": all_ended}))


# the hang first: the others start while its rank 0 waits out the timeout
CASES = {
    "rank 1 hangs": (1, "hang", f"trainer.strategy.collective_timeout_s={HANG_TIMEOUT_S}"),
    "rank 1 dies": (1, "exit"),
    "rank 0 dies": (0, "exit"),
}
PATIENCE_S = 150  # for every run to end; the pytest timeouts below are the backstop


def start_case(tmp_path: Path, rank: int, how: str, *overrides: str) -> tuple[subprocess.Popen, Path]:
    """Start training with rank ``rank`` dying (``how="exit"``) or hanging, under the supervisor."""
    command = [
        sys.executable,
        str(ROOT / "src" / "train.py"),
        *TOY,
        f"+callbacks.die.out={tmp_path / 'die'}",
        f"+callbacks.die.rank={rank}",
        f"+callbacks.die.how={how}",
        f"hydra.run.dir={tmp_path / 'run'}",
        *overrides,
    ]
    env = {**os.environ, "PYTHONPATH": str(TESTS), "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "1"}
    supervisor = subprocess.Popen(
        [sys.executable, __file__, str(tmp_path / "report.json"), str(PATIENCE_S), "--", *command],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a process group of its own: the run's every process
    )
    return supervisor, tmp_path


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def finish_case(supervisor: subprocess.Popen, tmp_path: Path, deadline: float) -> dict:
    """What became of every process of a run ``start_case`` started."""
    try:
        out, err = supervisor.communicate(timeout=max(deadline - time.monotonic(), 1))
    except subprocess.TimeoutExpired:
        return {"stdout": "", "stderr": f"the supervisor did not end in {PATIENCE_S} s", "all_ended": False}
    finally:
        left_behind = _group_alive(supervisor.pid)  # the supervisor has been reaped: its group's others
        with contextlib.suppress(ProcessLookupError):
            os.killpg(supervisor.pid, signal.SIGKILL)
        supervisor.wait()
    die = tmp_path / "die"
    found = json.loads((tmp_path / "report.json").read_text())
    case = {"stdout": out, "stderr": err, "all_ended": found["all_ended"] and not left_behind, "exits": {}}
    if (die / "event").is_file():
        event = float((die / "event").read_text())
        ended = {int(pid): e for pid, e in found["ended"].items()}
        pids = [int((die / f"pid{r}").read_text()) for r in range(2)]
        # rank -> (exit code, seconds from the death or hang to its exit), for the ranks the
        # supervisor reaped (rank 0 reaps its child rank 1 while it lives)
        case["start_s"] = event - found["started"]  # from the start to the death or hang
        case["exits"] = {
            r: (ended[p]["returncode"], ended[p]["time"] - event) for r, p in enumerate(pids) if p in ended
        }
    return case


@pytest.fixture(scope="module")
def cases(tmp_path_factory) -> dict[str, dict]:
    """The three runs, at the same time: most of a run is one process starting while the other waits."""
    started = {name: start_case(tmp_path_factory.mktemp("dead_rank"), *spec) for name, spec in CASES.items()}
    deadline = time.monotonic() + PATIENCE_S + 30
    return {name: finish_case(*run, deadline) for name, run in started.items()}


def _seconds(case: dict, rank: int) -> tuple[int, float]:
    """Rank ``rank``'s exit code and how long after the death or hang it exited."""
    assert "start_s" in case, (
        "the run never reached batch 3 (on a busy machine rank 1 can take longer than the "
        f"collective timeout to start):\n{case['stderr'][-3000:]}"
    )
    assert rank in case["exits"], f"no exit of rank {rank} seen:\n{case['stderr'][-3000:]}"
    return case["exits"][rank]


@two_ranks
@pytest.mark.timeout(300)
def test_rank_1_dies_and_rank_0_exits_at_once(cases):
    case = cases["rank 1 dies"]
    assert case["all_ended"], case["stderr"][-3000:]
    code, after = _seconds(case, 0)
    print(f"rank 1 died {case['start_s']:.1f} s in: rank 0 exited {code} after {after:.2f} s")
    assert code != 0 and after < DEATH_BOUND_S
    assert f"[rank0]: {DIED}" in case["stderr"] or OBSERVER in case["stderr"], case["stderr"][-3000:]


@two_ranks
@pytest.mark.timeout(300)
def test_rank_0_dies_and_its_orphaned_child_exits_at_once(cases):
    # rank 1 is rank 0's child: orphaned, it finds the connection closed at its next collective
    case = cases["rank 0 dies"]
    assert case["all_ended"], case["stderr"][-3000:]
    assert _seconds(case, 0)[0] == 1  # os._exit(1)
    code, after = _seconds(case, 1)
    print(f"rank 0 died {case['start_s']:.1f} s in: rank 1 exited {code} after {after:.2f} s")
    assert code != 0 and after < DEATH_BOUND_S
    assert f"[rank1]: {DIED}" in case["stderr"], case["stderr"][-3000:]
    assert "trainer.strategy.collective_timeout_s=1800 (seconds)" in case["stderr"]


@two_ranks
@pytest.mark.timeout(300)
def test_rank_1_hangs_rank_0_times_out_and_kills_it(cases):
    case = cases["rank 1 hangs"]
    # every process ended: rank 0 killed its hung child before exiting
    assert case["all_ended"], case["stderr"][-3000:]
    assert "killing the DDP processes it launched that are still running" in case["stdout"]
    code, after = _seconds(case, 0)
    print(f"rank 1 hung {case['start_s']:.1f} s in: rank 0 exited {code} after {after:.2f} s")
    assert code != 0 and HANG_TIMEOUT_S <= after < HANG_TIMEOUT_S + AFTER_TIMEOUT_BOUND_S
    timed_out = (
        f"another DDP rank did not join a collective within the collective timeout of {HANG_TIMEOUT_S} s"
    )
    assert f"[rank0]: {timed_out}" in case["stderr"], case["stderr"][-3000:]
    assert f"trainer.strategy.collective_timeout_s={HANG_TIMEOUT_S} (seconds)" in case["stderr"]


@pytest.mark.parametrize(
    ("error", "cause"),
    [  # what gloo raised in the runs above
        (
            "[/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:545] Read error "
            "[127.0.0.1]:22954: Connection reset by peer. This is typically caused by ...",
            "another DDP rank died",
        ),
        (
            "[/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/unbound_buffer.cc:78] "
            "Timed out waiting 15000ms for recv operation to complete",
            "did not join a collective within the collective timeout of 15 s",
        ),
        # the next collective after a timeout that Lightning's sigterm broadcast swallowed
        ("Application timeout caused pair closure", "did not join a collective within"),
        ("shape mismatch in the discriminator", None),
    ],
)
def test_a_failed_collective_is_explained(error, cause):
    from ganforge.strategy import GANDDPStrategy

    hint = GANDDPStrategy(collective_timeout_s=15)._failure_hint(RuntimeError(error))
    if cause is None:
        assert hint is None
    else:
        assert cause in hint and "trainer.strategy.collective_timeout_s=15 (seconds)" in hint
        assert "trainer.strategy.collective_timeout_s=30." in hint  # how to raise it


def test_a_failing_rank_0_kills_the_processes_it_launched_and_a_clean_stop_does_not():
    from lightning.fabric.plugins.environments import LightningEnvironment
    from lightning.pytorch.strategies.launchers.subprocess_script import _SubprocessScriptLauncher
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from ganforge.strategy import GANDDPStrategy

    strategy = GANDDPStrategy()
    strategy._launcher = launcher = _SubprocessScriptLauncher(LightningEnvironment(), 2, 1)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        launcher.procs.append(child)
        strategy.on_exception(SIGTERMException())  # every rank stops: the child ends on its own
        assert child.poll() is None and launcher.procs == [child]
        strategy.on_exception(RuntimeError("a bug on rank 0"))
        assert child.returncode == -signal.SIGKILL
        assert launcher.procs == []  # forgotten: Lightning's child observer stops
    finally:
        child.kill()
        child.wait()


def test_the_collective_timeout_is_configured_in_seconds(compose):
    from ganforge.pipeline import build

    default = build(compose(["trainer=ddp_sim", "metrics=none"]))["trainer"].strategy
    assert default.collective_timeout_s == 1800  # torch's default
    short = compose(["trainer=ddp_sim", "metrics=none", "trainer.strategy.collective_timeout_s=12.5"])
    assert build(short)["trainer"].strategy.collective_timeout_s == 12.5


@pytest.mark.parametrize("bad", [0, -5, float("nan"), float("inf"), "60", True, None])
def test_the_collective_timeout_must_be_a_positive_number_of_seconds(bad):
    from ganforge.strategy import GANDDPStrategy

    with pytest.raises(ValueError, match="collective_timeout_s must be a positive number of seconds"):
        GANDDPStrategy(collective_timeout_s=bad)
    with pytest.raises(TypeError, match="collective_timeout_s"):
        GANDDPStrategy(timeout=60)


def test_a_bad_collective_timeout_fails_when_the_trainer_is_built(compose):
    from hydra.errors import InstantiationException

    from ganforge.pipeline import build

    cfg = compose(["trainer=ddp_sim", "metrics=none", "trainer.strategy.collective_timeout_s=0"])
    with pytest.raises(InstantiationException, match="positive number of seconds, got 0"):
        build(cfg)


if __name__ == "__main__":
    if len(sys.argv) < 5 or sys.argv[3] != "--":
        raise SystemExit(f"usage: {sys.argv[0]} REPORT DEADLINE_S -- COMMAND...")
    supervise(Path(sys.argv[1]), float(sys.argv[2]), sys.argv[4:])
