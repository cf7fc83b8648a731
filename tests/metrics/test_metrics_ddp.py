"""Under DDP (2 CPU processes, gloo) FID/IS/KID equal the single-process values on the same samples."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

WORKER = Path(__file__).resolve().parent / "ddp_metrics_worker.py"


@pytest.mark.ddp
def test_two_ranks_match_one_process(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    # its own process: two process groups in one pytest process collide
    done = subprocess.run(
        [sys.executable, str(WORKER), str(tmp_path)], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    single = json.loads((tmp_path / "single.json").read_text())["results"]
    assert ranks[0]["results"] == ranks[1]["results"]  # every rank logs the same synchronised numbers
    assert ranks[0]["n_fake"] == 302 and ranks[0]["n_real"] == 401
    for name, value in single.items():
        assert ranks[0]["results"][name] == pytest.approx(value, rel=1e-3), name
    assert len(list((tmp_path / "cache").glob("real-*.pt"))) == 1  # written once, by rank 0
