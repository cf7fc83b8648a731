"""How long a SIGTERM takes to become a checkpoint and an exit.

Each case runs ``src/train.py`` as a cluster would, in a child process; once it has
trained ``--after`` batches (a marker file, written by a callback from this folder), the
parent sends SIGTERM and times:

- signal -> checkpoint: from the run's own log line (time to the end of the batch in
  progress, plus the write of ``last.ckpt``);
- signal -> exit: until the child process has ended (the checkpoint, Lightning's
  teardown, the loggers closing).

The batch time of the case is given beside them: the wait for the batch in progress is
at most one loader batch (the toys serve 8 generator steps in each). For scale, the time
a process that has only imported torch, Lightning and ganforge takes to exit is timed too:
that much of "signal -> exit" is Python's shutdown, not ganforge's.

    python benchmarks/preemption.py            # ~2 min on 2 cores
    python benchmarks/preemption.py --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import lightning as L

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent

CASES = {
    "dcgan-32 (digits, batch 64)": ["model=dcgan", "data=digits", "data.image_size=32", "data.batch_size=64"],
    "mlp (ring, batch 256 x 8)": ["model=mlp", "data=ring", "data.batch_size=256"],
}
COMMON = [
    "trainer.max_epochs=1000",
    "metrics=none",
    "logger=csv",
    "callbacks.rich_progress_bar.refresh_rate=0",
    "callbacks.samples.every_n_epochs=1000",
]
_WROTE = re.compile(r"wrote (\S+) at step (\d+) .* in ([0-9.]+) s, ([0-9.]+) s after the signal")


class Marker(L.Callback):
    """Writes ``path`` once ``after`` batches are done, with the mean batch time so far."""

    def __init__(self, path: str, after: int) -> None:
        self.path, self.after, self.start = Path(path), int(after), None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if batch_idx == 0:
            self.start = time.perf_counter()
        elif batch_idx == self.after and not self.path.exists():
            per_batch = (time.perf_counter() - self.start) / (self.after)
            self.path.write_text(json.dumps({"batch_s": per_batch}))


def one_stop(args: list[str], after: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        marker = Path(tmp) / "marker.json"
        cmd = [
            sys.executable,
            str(ROOT / "src" / "train.py"),
            *args,
            *COMMON,
            f"hydra.run.dir={tmp}/run",
            "+callbacks.marker._target_=preemption.Marker",
            f"+callbacks.marker.path={marker}",
            f"+callbacks.marker.after={after}",
        ]
        env = {**os.environ, "PYTHONPATH": str(HERE), "HYDRA_FULL_ERROR": "1"}
        proc = subprocess.Popen(
            cmd, cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        while not marker.exists():
            if proc.poll() is not None:
                raise RuntimeError(f"the run ended before the marker: {proc.stdout.read()[-3000:]}")
            time.sleep(0.01)
        batch_s = json.loads(marker.read_text())["batch_s"]
        sent = time.perf_counter()
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
        exited = time.perf_counter() - sent
        found = _WROTE.search(out)
        if proc.returncode != 0 or found is None:
            raise RuntimeError(f"no clean stop (exit {proc.returncode}): {out[-3000:]}")
        save_s, waited_s = float(found.group(3)), float(found.group(4))
        ckpt_mb = Path(found.group(1)).stat().st_size / 2**20
        return {
            "batch_ms": batch_s * 1e3,
            "to_batch_end_ms": waited_s * 1e3,
            "write_ms": save_s * 1e3,
            "to_checkpoint_ms": (waited_s + save_s) * 1e3,
            "to_exit_ms": exited * 1e3,
            "checkpoint_mb": ckpt_mb,
        }


def exit_after_imports() -> float:
    """Seconds from a child's last line to its end, for a child that only imports."""
    code = "import torch, lightning, ganforge.pipeline; print('ready', flush=True)"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    proc.stdout.readline()
    ready = time.perf_counter()
    proc.wait(timeout=120)
    return time.perf_counter() - ready


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--after", type=int, default=20, help="batches trained before the signal")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()

    rows = {}
    for name, case in CASES.items():
        runs = [one_stop(case, args.after) for _ in range(args.repeats)]
        rows[name] = {k: statistics.median(r[k] for r in runs) for k in runs[0]} | {"runs": runs}
        r = rows[name]
        print(
            f"{name}: batch {r['batch_ms']:.1f} ms, signal -> checkpoint {r['to_checkpoint_ms']:.0f} ms "
            f"(batch end {r['to_batch_end_ms']:.0f} + write {r['write_ms']:.0f}), "
            f"signal -> exit {r['to_exit_ms']:.0f} ms"
        )

    exit_ms = statistics.median(exit_after_imports() for _ in range(args.repeats)) * 1e3
    print(f"a process that only imported torch, Lightning and ganforge: {exit_ms:.0f} ms to exit")

    args.out.mkdir(parents=True, exist_ok=True)
    result = {"repeats": args.repeats, "cases": rows, "exit_after_imports_ms": exit_ms}
    (args.out / "preemption.json").write_text(json.dumps(result, indent=2))
    lines = [
        "| case | batch (ms) | signal -> end of batch (ms) | write last.ckpt (ms) | signal -> checkpoint (ms) "
        "| signal -> exit (ms) | checkpoint (MB) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        lines.append(
            f"| {name} | {r['batch_ms']:.1f} | {r['to_batch_end_ms']:.0f} | {r['write_ms']:.0f} "
            f"| {r['to_checkpoint_ms']:.0f} | {r['to_exit_ms']:.0f} | {r['checkpoint_mb']:.1f} |"
        )
    note = (
        f"\nMedians of {args.repeats} stops each, `python benchmarks/preemption.py`, 2-core CPU. "
        f"A process that only imported torch, Lightning and ganforge took {exit_ms:.0f} ms to exit.\n"
    )
    (args.out / "preemption.md").write_text("\n".join(lines) + "\n" + note)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
