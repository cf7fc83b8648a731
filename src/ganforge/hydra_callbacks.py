"""Hydra callbacks (``hydra.callbacks`` in conf/hydra/default.yaml): the end of a job, the end of a sweep.

``CloseJob`` runs after every job, failed or not, in the process that ran it (as
lightning-hydra-template's ``task_wrapper`` does around the task): it finishes the W&B
run and releases what a DDP launch left behind, so the next job of a multirun starts
clean. ``SweepSummary`` gathers each job's ``final_metrics.json`` (written by
``ganforge.pipeline.train``) into ``summary.csv`` and ``summary.md`` in the sweep
directory, one row per job.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import re
from pathlib import Path
from typing import Any

import yaml
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger("ganforge")

FINAL_METRICS = "final_metrics.json"


class CloseJob(Callback):
    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        from ganforge.launch import end_launched_job
        from ganforge.loggers import finish_wandb

        finish_wandb(exit_code=0 if job_return.status == JobStatus.COMPLETED else 1)
        end_launched_job()


def _natural(path: Path) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(path))]


def read_jobs(sweep_dir: Path) -> list[dict[str, Any]]:
    """``{"job", "overrides", "metrics"}`` of every job under ``sweep_dir`` that finished."""
    jobs = []
    for path in sorted(sweep_dir.rglob(FINAL_METRICS), key=_natural):
        job_dir = path.parent
        overrides_file = job_dir / ".hydra" / "overrides.yaml"
        overrides = yaml.safe_load(overrides_file.read_text()) if overrides_file.is_file() else []
        pairs = dict(o.lstrip("+~").split("=", 1) for o in overrides or [] if "=" in o)
        jobs.append(
            {
                "job": str(job_dir.relative_to(sweep_dir)),
                "overrides": pairs,
                "metrics": json.loads(path.read_text()),
            }
        )
    return jobs


def summary_table(jobs: list[dict[str, Any]], first: str | None = None) -> tuple[list[str], list[list[Any]]]:
    """Header and rows: the job, the overrides that vary between jobs, every final metric."""
    keys: list[str] = []
    for job in jobs:
        keys += [k for k in job["overrides"] if k not in keys]
    varying = [k for k in keys if len({job["overrides"].get(k) for job in jobs}) > 1] or keys
    metrics = sorted({m for job in jobs for m in job["metrics"]})
    # the metric a search optimises leads; else FID, the headline number
    lead = first if first in metrics else ("val/fid" if "val/fid" in metrics else None)
    if lead is not None:
        metrics.remove(lead)
        metrics.insert(0, lead)
    header = ["job", *varying, *metrics]
    rows = [
        [
            job["job"],
            *(job["overrides"].get(k, "") for k in varying),
            *(job["metrics"].get(m) for m in metrics),
        ]
        for job in jobs
    ]
    return header, rows


def _cell(value: Any) -> str:
    """Markdown cell: numbers to 4 significant digits (an Optuna lr arrives as a long string)."""
    if isinstance(value, str) and re.fullmatch(r"-?\d*\.\d+(e-?\d+)?|-?\d+e-?\d+", value):
        value = float(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return "" if value is None else str(value)


def write_summary(sweep_dir: Path, first: str | None = None) -> list[Path]:
    jobs = read_jobs(sweep_dir)
    if not jobs:
        return []
    header, rows = summary_table(jobs, first)
    csv_path, md_path = sweep_dir / "summary.csv", sweep_dir / "summary.md"
    with csv_path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows([[("" if v is None else v) for v in row] for row in rows])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    md_path.write_text("\n".join(lines) + "\n")
    return [csv_path, md_path]


class SweepSummary(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        written = write_summary(sweep_dir, config.get("optimized_metric"))
        if written:
            log.info("Sweep summary: %s", " and ".join(str(p) for p in written))
        else:
            log.warning("Sweep summary: no job under %s wrote %s", sweep_dir, FINAL_METRICS)


__all__ = ["CloseJob", "SweepSummary", "read_jobs", "summary_table", "write_summary"]
