"""Under DDP (2 CPU processes, gloo) FID/IS/KID, precision/recall/density/coverage and, for a conditional
sampler, intra-class FID and class accuracy equal the single-process values on the same samples."""

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
    assert {"precision", "recall", "density", "coverage"} <= set(single)
    assert set(ranks[0]["results"]) == set(single)
    for name, value in single.items():
        assert ranks[0]["results"][name] == pytest.approx(value, rel=1e-3), name
    for name in ("precision", "recall", "density", "coverage"):  # counts over the same gathered features
        assert ranks[0]["results"][name] == pytest.approx(single[name], abs=1e-12), name
    assert len(list((tmp_path / "cache").glob("real-*.pt"))) == 1  # written once, by rank 0

    conditional = [json.loads((tmp_path / f"conditional_rank{r}.json").read_text()) for r in range(2)]
    single = json.loads((tmp_path / "conditional_single.json").read_text())
    assert conditional[0] == conditional[1]
    assert {"intra_fid", "class_accuracy", "precision"} <= set(single["results"])
    assert set(conditional[0]["results"]) == set(single["results"])
    for name, value in single["results"].items():
        assert conditional[0]["results"][name] == pytest.approx(value, rel=1e-6), name
    per_class = conditional[0]["per_class"]
    assert per_class["n_fake"] == single["per_class"]["n_fake"] and sum(per_class["n_fake"]) == 302
    assert per_class["intra_fid"] == pytest.approx(single["per_class"]["intra_fid"], rel=1e-6)
    assert len(list((tmp_path / "cache_conditional").glob("real-*.pt"))) == 1
