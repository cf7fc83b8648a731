"""The command line as a user runs it: ``src/train.py`` in a child process.

Each run gets a process of its own (two DDP process groups in one pytest process collide
on the port) and one torch thread (two cores are shared with the test runner).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# a run of two training batches with no logger, metrics or callbacks: for tests of what
# uses a trained model (conftest's train_tiny) and of resuming one
TINY_RUN = (
    "trainer=debug",
    "trainer.limit_train_batches=2",
    "trainer.detect_anomaly=false",
    "++trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "metrics=none",
    "logger=none",
    "callbacks=none",
)

# tiny conv nets on 16x16 digits: a training batch takes milliseconds
TINY_DCGAN = [
    "data.image_size=16",
    "data.batch_size=32",
    "model.generator.width=8",
    "model.discriminator.width=8",
    "model.generator.latent_dim=16",
]


def run_train_script(
    args: list[str], cwd: Path, timeout: int = 300, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """``env`` replaces the inherited environment when given (the defaults below still apply)."""
    child_env = {**(os.environ if env is None else env), "OMP_NUM_THREADS": "1"}
    child_env.setdefault("HYDRA_FULL_ERROR", "1")
    return subprocess.run(
        [sys.executable, str(ROOT / "src" / "train.py"), *args],
        cwd=cwd,
        env=child_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
