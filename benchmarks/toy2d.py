"""Mode coverage on the 2-D ring and grid, per loss, over several seeds.

Each run trains the mlp nets for ``--steps`` generator steps (``experiment=toy_ring``
/ ``toy_grid`` with the chosen loss), then draws 2,500 samples from the EMA
generator and scores them with PacGAN's protocol (ganforge.metrics.coverage).
Every loss gets its recipe (conf/recipe/mlp_<data>_<loss>.yaml: learning rate, betas,
penalties), the experiments the shared budget, batch and decay. The table gives mean +- std over seeds, printed beside the
GAN and PacGAN2 rows that Lin et al. 2018 (PacGAN, Table 2) report; they trained
larger nets (4x400 generator) for longer: compare the trend, not the digits.

    python benchmarks/toy2d.py --jobs 2                        # 6 losses x 5 seeds x 2 sets
    python benchmarks/toy2d.py --losses vanilla --seeds 0 1 --data ring --steps 2000
    python benchmarks/toy2d.py --data grid --losses vanilla -- model.g_optimizer.lr=1e-3
    python benchmarks/toy2d.py --resume --losses lsgan      # add runs to the ones on record

With ``--resume`` the runs already in ``toy2d_runs.jsonl`` (same data, loss, seed, steps,
overrides and recipe file) are kept and not rerun, runs whose recipe file has changed
since are dropped (and rerun when asked for), and the table summarises the rest; without
it the file starts empty.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

from ganforge.metrics.coverage import mode_coverage
from ganforge.pipeline import train

ROOT = Path(__file__).resolve().parents[1]
# (modes, high-quality %) as Lin et al. 2018 (PacGAN), Table 2, report them; transcribed
# by hand, offline: check against the paper before quoting them further
PUBLISHED = {
    ("ring", "GAN (Lin et al. 2018)"): (6.3, 98.2),
    ("ring", "PacGAN2 (Lin et al. 2018)"): (7.9, 95.6),
    ("grid", "GAN (Lin et al. 2018)"): (17.3, 94.8),
    ("grid", "PacGAN2 (Lin et al. 2018)"): (23.8, 91.3),
}


def recipe_id(data: str, loss: str) -> str | None:
    """Fingerprint of the recipe a run of this data and loss gets (None: it has none).

    A run on record counts for ``--resume`` only while its recipe file is unchanged, so
    a tuned recipe is measured afresh instead of being summarised with the old one's runs.
    """
    path = ROOT / "conf" / "recipe" / f"mlp_{data}_{loss}.yaml"
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12] if path.is_file() else None


def run(data: str, loss: str, seed: int, steps: int, overrides: tuple[str, ...] = ()) -> dict:
    torch.set_num_threads(int(os.environ.get("TOY2D_THREADS", torch.get_num_threads())))
    recipe = recipe_id(data, loss)  # before composing: the file this run reads
    out = Path(tempfile.mkdtemp(prefix=f"toy2d_{data}_{loss}_{seed}_"))
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(
            config_name="train",
            return_hydra_config=True,
            overrides=[
                f"experiment=toy_{data}",
                f"loss={loss}",
                f"seed={seed}",
                f"trainer.max_steps={steps}",
                "trainer=cpu",
                "logger=none",
                "callbacks=none",
                "trainer.enable_model_summary=false",
                "++trainer.enable_progress_bar=false",
                *overrides,
            ],
        )
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = cfg.paths.output_dir = str(out)
        cfg.hydra.runtime.cwd = str(ROOT)
        cfg.hydra.job.num = 0
    HydraConfig.instance().set_config(cfg)
    t0 = time.perf_counter()
    _, objects = train(cfg)
    seconds = time.perf_counter() - t0
    module, dm = objects["model"], objects["datamodule"]
    samples = module.sample(2500, generator=torch.Generator().manual_seed(seed))
    cov = mode_coverage(samples, dm.modes, dm.std)
    return {
        "data": data,
        "loss": loss,
        "seed": seed,
        "g_steps": module.g_steps,
        "overrides": list(overrides),
        "recipe": recipe,
        "threads": torch.get_num_threads(),
        "seconds": seconds,
        **cov.as_dict(),
    }


def summarise(rows: list[dict]) -> list[dict]:
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        # runs at another budget or with other overrides are rows of their own
        key = (r["data"], r["loss"], r["g_steps"], tuple(r.get("overrides", ())))
        groups.setdefault(key, []).append(r)
    out = []
    for (data, loss, g_steps, overrides), rs in groups.items():

        def ms(key, scale=1.0, rs=rs):
            vals = [scale * r[key] for r in rs]
            return statistics.mean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0)

        out.append(
            {
                "data": data,
                "loss": loss,
                "seeds": len(rs),
                "modes": ms("modes"),
                "hq_percent": ms("hq_fraction", 100.0),
                "kl": ms("kl"),
                "g_steps": g_steps,
                "overrides": list(overrides),
                "hq_min_percent": 100.0 * min(r["hq_fraction"] for r in rs),
                "modes_min": min(r["modes"] for r in rs),
            }
        )
    return out


def table(summary: list[dict]) -> str:
    lines = [
        "| data | loss | seeds | G steps | modes | high quality % | worst seed: modes, HQ % | KL |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for data in dict.fromkeys(s["data"] for s in summary):
        for s in (s for s in summary if s["data"] == data):
            lines.append(
                f"| {data} | {' '.join([s['loss'], *s.get('overrides', [])])} | {s['seeds']} | {s['g_steps']} "
                f"| {s['modes'][0]:.1f} ± {s['modes'][1]:.1f} "
                f"| {s['hq_percent'][0]:.1f} ± {s['hq_percent'][1]:.1f} "
                f"| {s['modes_min']}, {s['hq_min_percent']:.1f} "
                f"| {s['kl'][0]:.3f} ± {s['kl'][1]:.3f} |"
            )
        for (d, name), (modes, hq) in PUBLISHED.items():
            if d == data:
                lines.append(f"| {data} | {name} | | | {modes} | {hq} | | |")
    return "\n".join(lines)


def job_key(item: dict | tuple) -> tuple:
    """(data, loss, seed, steps, overrides) of a job tuple or of a recorded run."""
    if isinstance(item, tuple):
        return (*item[:4], tuple(item[4]))
    return (item["data"], item["loss"], item["seed"], item["g_steps"], tuple(item.get("overrides", ())))


def on_record(path: Path) -> list[dict]:
    """The runs a previous invocation wrote, skipping a line torn by a kill."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            print(f"{path}: skipping an unreadable line: {line[:80]!r}")
    return rows


def _run_job(job: tuple) -> dict:
    return run(*job)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", nargs="+", default=["ring", "grid"])
    parser.add_argument(
        "--losses", nargs="+", default=["vanilla", "hinge", "rpgan", "lsgan", "relativistic", "wgan_gp"]
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--steps", type=int, default=10000)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument(
        "--jobs", type=int, default=1, help="runs in parallel, one torch thread each when > 1"
    )
    parser.add_argument(
        "--resume", action="store_true", help="keep the runs on record in toy2d_runs.jsonl and add to them"
    )
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for every run")
    args = parser.parse_args()
    jobs = [
        (d, loss, seed, args.steps, tuple(args.overrides))
        for loss in args.losses  # loss by loss, so a cut-short run has whole rows
        for d in args.data
        for seed in args.seeds
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    # every finished run at once, so an interrupted benchmark keeps what it measured
    partial = args.out / "toy2d_runs.jsonl"
    rows = on_record(partial) if args.resume else []
    current = [r for r in rows if r.get("recipe") == recipe_id(r["data"], r["loss"])]
    if len(current) < len(rows):
        print(f"dropping {len(rows) - len(current)} run(s) on record whose recipe file has changed since")
    rows = current  # so job_key needs no recipe: every run left is of the recipe as it is
    done = {job_key(r) for r in rows}
    jobs = [j for j in jobs if job_key(j) not in done]
    partial.write_text("".join(json.dumps(r) + "\n" for r in rows))  # drops a torn line

    def keep(row: dict) -> None:
        rows.append(row)
        with partial.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)

    if args.jobs > 1:
        import multiprocessing as mp

        os.environ["TOY2D_THREADS"] = "1"
        with mp.get_context("spawn").Pool(args.jobs) as pool:
            for row in pool.imap_unordered(_run_job, jobs):
                keep(row)
    else:
        for job in jobs:
            keep(run(*job))
    summary = summarise(rows)
    md = table(summary)
    print(md)
    (args.out / "toy2d.json").write_text(json.dumps({"runs": rows, "summary": summary}, indent=2))
    (args.out / "toy2d.md").write_text(md + "\n")


if __name__ == "__main__":
    main()
