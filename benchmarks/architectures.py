"""Architectures at equal wall-clock time on the embedded digits (32x32, 1 channel).

Every run trains one recipe (a list of Hydra overrides, ``RECIPES`` below) for the same
wall-clock budget, enforced by Lightning's ``Trainer(max_time=...)``, with no checkpoints,
sample grids, metrics or loggers inside the budget; then the EMA generator's samples are
scored once with the digits extractor under the metrics callback's protocol
(``metrics=digits``: 2,000 generated images against all 1,797 digits, seed 0, through
``ganforge.metrics``' ``FidelityEvaluator``). The real-data floor is the same FID between
two random halves of the digits (898 against 899 images), over ``--floor-splits`` splits;
the goal line is FID <= 2x that floor. The floor is measured with fewer images than the
runs (FID's bias grows as the sample shrinks), so it is a generous floor, not a strict one.

Equal wall-clock is not equal compute: with ``--jobs N`` the runs share the cores, and each
gets ``--threads`` torch threads (default: cores // jobs). The table says which.
Run it on a quiet machine: while another process holds a core, a 2-thread run pays the
OpenMP hand-off on every op (a small batch norm measured 23.5 ms at 2 threads against
1.0 ms at 1 thread on a busy 2-core machine), so use ``--threads 1`` if the machine is
shared. The load average at start and end is recorded.

    python benchmarks/architectures.py                       # 4 models x 3 seeds x 10 min, ~2 h on 2 cores
    python benchmarks/architectures.py --jobs 2              # ~1 h, one thread per run
    python benchmarks/architectures.py --models dcgan resnet --seeds 0 --minutes 5
    python benchmarks/architectures.py --set resnet:loss.n_critic=5 -- trainer.precision=bf16-mixed
    python benchmarks/architectures.py --minutes 0.2 --seeds 0 --floor-splits 1 --out /tmp/arch   # smoke test
    python benchmarks/architectures.py --jobs 2 --resume     # rerun only what is not on record

Each finished run is appended to ``architectures_runs.jsonl`` at once. ``--resume`` keeps
the runs on record there and in ``architectures.json`` (same model, seed, minutes, threads
and recipe), runs the rest (a failed run is not on record) and summarises all of them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import lightning as L
import torch
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import open_dict

from ganforge.data.digits import DigitsDataModule
from ganforge.pipeline import build

ROOT = Path(__file__).resolve().parents[1]

# Widths are cut far below the CIFAR-10 presets so that one generator step (with its
# n_critic D steps) costs about 4-4.5x DCGAN's on a CPU: measured at one thread, 30 s per
# model (seconds per G step: dcgan 0.77, resnet 3.3, biggan 3.0, r3gan 3.4), so each gets
# about a quarter of DCGAN's ~1,100 generator steps in 10 minutes. Learning rates and betas
# are the published ones where a source fits a short budget, else the module defaults.
# Change them here or with --set MODEL:OVERRIDE.
RECIPES: dict[str, dict] = {
    "dcgan": {
        "overrides": [],  # exactly the default run: model=dcgan loss=vanilla data=digits
        "note": "the default run (python src/train.py): width 64, lr 2e-4, betas (0.5, 0.999)",
    },
    "resnet": {
        "overrides": [
            "model=resnet",
            "loss=hinge",
            "model.generator.width=64",
            "model.discriminator.width=64",
            "loss.n_critic=1",
            "loss.betas=[0.5,0.999]",
        ],
        # Miyato et al. 2018 (SNGAN), Table 1 setting C (lr 2e-4, betas (0.5, 0.999), one D
        # step per G step), under which the spectrally normalised D still trained well
        # (their Fig. 1, standard CNN; their ResNet runs used 5 D steps, which would leave a
        # fifth of the generator steps in this budget)
        "note": "SNGAN ResNet, hinge, G/D width 64 (CIFAR: 256/128), n_critic 1 (SNGAN setting C)",
    },
    "biggan": {
        "overrides": [
            "model=biggan",
            "loss=hinge",
            "model.generator.width=16",
            "model.discriminator.width=16",
            "loss.n_critic=2",
            "loss.betas=[0.5,0.999]",
        ],
        # BigGAN at 32 px keeps 4x width channels at every resolution, so width 16 costs
        # about what width 64 does for the SNGAN pair; 2 D steps per G step as Brock et al.
        # 2019 train on ImageNet; lr 2e-4 and betas (0.5, 0.999) as StudioGAN's CIFAR-10 config
        "note": "BigGAN, class-conditional, hinge, width 16 (CIFAR: 96), n_critic 2",
    },
    "r3gan": {
        "overrides": [
            "model=r3gan",
            "loss=rpgan",
            "model.generator.width=32",
            "model.generator.cardinality=4",  # 16 channels per group, as the official 768/96
            "model.generator.blocks=1",  # 2 per stage cost 6 s per G step (width 64: 16 s)
        ],
        # constant lr 2e-4, betas (0, 0.9), R1 = R2 = 0.05: the start of the paper's CIFAR-10
        # schedules (experiment=r3gan_cifar10), which run over 20 Mimg, far past this budget
        "note": "R3GAN + RpGAN/R1/R2 (gamma 0.05), width 32 (CIFAR: 768), cardinality 4, 1 block per stage",
    },
    "cdcgan": {
        "overrides": ["model=cdcgan"],
        "note": "conditional DCGAN (not in the default list): the conditional baseline for biggan",
    },
}
DEFAULT_MODELS = ["dcgan", "resnet", "biggan", "r3gan"]


def budget(minutes: float) -> str:
    """Lightning's max_time as DD:HH:MM:SS (whole seconds, at least one)."""
    s = max(1, round(minutes * 60))
    return f"{s // 86400:02d}:{s // 3600 % 24:02d}:{s // 60 % 60:02d}:{s % 60:02d}"


def compose_cfg(overrides: list[str], out_dir: Path):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="train", return_hydra_config=True, overrides=overrides)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = cfg.paths.output_dir = str(out_dir)
        cfg.hydra.runtime.cwd = str(ROOT)  # the metrics cache lives under outputs/.cache
        cfg.hydra.job.num = 0
    HydraConfig.instance().set_config(cfg)
    return cfg


class Clock(L.Callback):
    """Wall-clock of the training loop alone (Lightning's max_time counts the same span)."""

    def __init__(self) -> None:
        self.start = self.seconds = 0.0

    def on_train_start(self, trainer, pl_module) -> None:
        self.start = time.perf_counter()

    def on_train_end(self, trainer, pl_module) -> None:
        self.seconds = time.perf_counter() - self.start


def count(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def run(model: str, seed: int, minutes: float, threads: int, overrides: tuple[str, ...]) -> dict:
    torch.set_num_threads(threads)
    out = Path(tempfile.mkdtemp(prefix=f"arch_{model}_{seed}_"))
    recipe = [*RECIPES[model]["overrides"], *overrides]
    cfg = compose_cfg(
        [
            *recipe,
            f"seed={seed}",
            "trainer=cpu",
            "trainer.max_epochs=-1",
            "trainer.max_steps=-1",
            f"++trainer.max_time={budget(minutes)}",
            "++trainer.enable_checkpointing=false",
            "++trainer.enable_progress_bar=false",
            "trainer.enable_model_summary=false",
            "callbacks=none",
            "logger=none",
        ],
        out,
    )
    objs = build(cfg)
    module, dm, trainer = objs["model"], objs["datamodule"], objs["trainer"]
    clock = Clock()
    trainer.callbacks.append(clock)
    trainer.fit(module, datamodule=dm)
    # the metrics callback's evaluator, built from the composed metrics=digits config
    evaluator = instantiate(cfg.metrics).evaluator
    start = time.perf_counter()
    evaluator.prepare(dm, module.device)
    scores = evaluator.evaluate(module)
    return {
        "model": model,
        "seed": seed,
        "recipe": recipe,
        "minutes": minutes,
        "threads": threads,
        "train_seconds": clock.seconds,
        "g_steps": module.g_steps,
        "d_steps": module.d_steps,
        "images": module.images_seen,
        "img_per_s": module.images_seen / clock.seconds if clock.seconds else None,
        "g_params": count(module.generator),
        "d_params": count(module.discriminator),
        "eval_seconds": time.perf_counter() - start,
        **scores,
        "protocol": evaluator.protocol(),
    }


class Images:
    """The part of a datamodule that ``FidelityEvaluator.prepare`` reads, over given images."""

    def __init__(self, x: torch.Tensor) -> None:
        self.x, self.data_shape = x, tuple(x.shape[1:])

    def real_samples(self, n: int | None = None) -> torch.Tensor:
        return self.x if n is None else self.x[:n]

    def fingerprint(self) -> str:
        return hashlib.sha1(self.x.numpy().tobytes()).hexdigest()[:16]


class Replay:
    """A sampler that hands out the given images in order instead of generating them."""

    device = torch.device("cpu")

    def __init__(self, x: torch.Tensor) -> None:
        self.x, self.at = x, 0

    def sample(self, n: int, labels=None, generator=None) -> torch.Tensor:
        self.at += n
        return self.x[self.at - n : self.at]


def real_floor(splits: int) -> dict:
    """FID between two random halves of the digits, under the runs' metrics config."""
    cfg = compose_cfg(["trainer=cpu"], Path(tempfile.mkdtemp(prefix="arch_floor_")))
    dm = DigitsDataModule(image_size=int(cfg.data.image_size))
    x = dm.real_samples()
    values = []
    for split in range(splits):
        perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(split))
        a, b = x[perm[: len(x) // 2]], x[perm[len(x) // 2 :]]
        evaluator = instantiate(cfg.metrics, num_fake=len(b), cache_dir=None).evaluator
        evaluator.prepare(Images(a), "cpu")
        values.append(evaluator.evaluate(Replay(b))["fid"])
    return {
        "fid": values,
        "mean": statistics.mean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "n_real": len(x) // 2,
        "n_fake": len(x) - len(x) // 2,
    }


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def summarise(rows: list[dict], goal: float) -> list[dict]:
    out = []
    for model in dict.fromkeys(r["model"] for r in rows):
        rs = [r for r in rows if r["model"] == model]
        fid = mean_std([r["fid"] for r in rs])
        out.append(
            {
                "model": model,
                "note": RECIPES[model]["note"],
                "seeds": [r["seed"] for r in rs],
                "fid": fid,
                "fids": [r["fid"] for r in rs],
                "g_steps": mean_std([r["g_steps"] for r in rs]),
                "images": mean_std([r["images"] for r in rs]),
                "img_per_s": mean_std([r["img_per_s"] for r in rs]),
                "g_params": rs[0]["g_params"],
                "d_params": rs[0]["d_params"],
                "meets_goal": fid[0] <= goal,
            }
        )
    return out


def table(summary: list[dict], floor: dict, env: dict, skipped: dict[str, str]) -> str:
    goal = 2 * floor["mean"]
    lines = [
        f"Equal wall-clock: {env['minutes']:g} min of training per run, {env['jobs']} run(s) at a time "
        f"with {env['threads']} torch thread(s) each, on {env['cores']} cores. FID: digits extractor, "
        f"EMA generator, {env['n_fake']} generated vs {env['n_real']} real digits (mean ± std over seeds).",
        "",
        "| model | recipe | seeds | G steps | real images (k) | real img/s | G params | D params "
        "| FID | ≤ 2x floor |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summary:
        lines.append(
            f"| {s['model']} | {s['note']} | {len(s['seeds'])} "
            f"| {s['g_steps'][0]:.0f} ± {s['g_steps'][1]:.0f} "
            f"| {s['images'][0] / 1000:.1f} | {s['img_per_s'][0]:.0f} ± {s['img_per_s'][1]:.0f} "
            f"| {s['g_params'] / 1e6:.2f}M | {s['d_params'] / 1e6:.2f}M "
            f"| {s['fid'][0]:.2f} ± {s['fid'][1]:.2f} | {'yes' if s['meets_goal'] else 'no'} |"
        )
    lines.append(
        f"| real-data floor | two random halves of the digits ({floor['n_fake']} vs {floor['n_real']}), "
        f"{len(floor['fid'])} split(s) | | | | | | | {floor['mean']:.2f} ± {floor['std']:.2f} | |"
    )
    lines.append(f"| goal | FID ≤ 2x floor | | | | | | | ≤ {goal:.2f} | |")
    for model, why in skipped.items():
        lines.append(f"| {model} | skipped: {why} | | | | | | | | |")
    return "\n".join(lines)


def missing_configs(model: str) -> list[str]:
    """The model/loss configs a recipe names that are not in conf/ (yet)."""
    groups = [o.split("=", 1) for o in RECIPES[model]["overrides"]]
    paths = [f"conf/{group}/{name}.yaml" for group, name in groups if group in ("model", "loss")]
    return [p for p in paths if not (ROOT / p).is_file()]


def run_key(model: str, seed: int, minutes: float, threads: int, recipe) -> tuple:
    return (model, seed, float(minutes), threads, tuple(recipe))


def on_record(out: Path) -> list[dict]:
    """Finished runs in out/architectures.json and out/architectures_runs.jsonl, once each."""
    rows = []
    if (out / "architectures.json").is_file():
        rows += json.loads((out / "architectures.json").read_text())["runs"]
    if (out / "architectures_runs.jsonl").is_file():
        for line in (out / "architectures_runs.jsonl").read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:  # a line torn by a kill
                print(f"architectures_runs.jsonl: skipping an unreadable line: {line[:80]!r}")
    unique = {}
    for r in rows:
        unique.setdefault(run_key(r["model"], r["seed"], r["minutes"], r["threads"], r["recipe"]), r)
    return list(unique.values())


def _run_job(job: tuple) -> dict:
    return run(*job)


def parse_sets(items: list[str]) -> dict[str, list[str]]:
    sets: dict[str, list[str]] = {}
    for item in items:
        model, sep, override = item.partition(":")
        if not sep or model not in RECIPES:
            raise SystemExit(f"--set takes MODEL:OVERRIDE with MODEL in {sorted(RECIPES)}, got {item!r}")
        sets.setdefault(model, []).append(override)
    return sets


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS, choices=sorted(RECIPES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--minutes", type=float, default=10.0, help="wall-clock training budget per run")
    parser.add_argument("--jobs", type=int, default=1, help="runs in parallel (spawned processes)")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads per run (default: cores // jobs)"
    )
    parser.add_argument("--floor-splits", type=int, default=5, help="random halvings for the real-data floor")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="MODEL:OVERRIDE",
        help="an extra Hydra override for one model's recipe (repeatable)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument(
        "--resume", action="store_true", help="keep the runs on record in --out and run only the rest"
    )
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for every run")
    args = parser.parse_args()
    sets = parse_sets(args.set)
    cores = os.cpu_count() or 1
    threads = args.threads or max(1, cores // args.jobs)
    skipped = {m: f"{', '.join(missing)} not found" for m in args.models if (missing := missing_configs(m))}
    models = [m for m in args.models if m not in skipped]
    jobs = [
        (m, seed, args.minutes, threads, (*sets.get(m, []), *args.overrides))
        for m in models
        for seed in args.seeds
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    partial = args.out / "architectures_runs.jsonl"
    kept = on_record(args.out) if args.resume else []
    if kept:  # the file holds every run on record, the table only the runs asked for
        partial.write_text("".join(json.dumps(r) + "\n" for r in kept))
    else:
        partial.write_text("")
    by_key = {run_key(r["model"], r["seed"], r["minutes"], r["threads"], r["recipe"]): r for r in kept}
    keys = [run_key(*j[:4], [*RECIPES[j[0]]["overrides"], *j[4]]) for j in jobs]
    rows = [by_key[k] for k in keys if k in by_key]
    jobs = [j for j, k in zip(jobs, keys, strict=True) if k not in by_key]
    print(f"{len(rows)} run(s) on record, {len(jobs)} to run", flush=True)
    load_start = os.getloadavg()
    t0 = time.perf_counter()
    failed = {}

    def collect(job, result) -> None:
        if isinstance(result, dict):
            rows.append(result)
            with partial.open("a") as f:
                f.write(json.dumps(result) + "\n")
            print(
                json.dumps({k: v for k, v in result.items() if k not in ("protocol", "recipe")}), flush=True
            )
        else:
            failed[f"{job[0]} seed {job[1]}"] = result
            print(f"FAILED {job[0]} seed {job[1]}: {result}", flush=True)

    if args.jobs > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(args.jobs) as pool:
            pending = [(job, pool.apply_async(_run_job, (job,))) for job in jobs]
            for job, res in pending:
                try:
                    collect(job, res.get())
                except Exception as err:  # one failed run must not lose the others
                    collect(job, f"{type(err).__name__}: {err}")
    else:
        for job in jobs:
            try:
                collect(job, run(*job))
            except Exception as err:
                collect(job, f"{type(err).__name__}: {err}")
    torch.set_num_threads(threads)
    floor = real_floor(args.floor_splits)
    for name, why in failed.items():
        skipped[name] = f"failed ({why[:200]})"
    summary = summarise(rows, 2 * floor["mean"])
    protocol = rows[0]["protocol"] if rows else {}
    env = {
        "minutes": args.minutes,
        "jobs": args.jobs,
        "threads": threads,
        "cores": cores,
        "n_fake": protocol.get("n_fake"),
        "n_real": protocol.get("n_real"),
        "extractor": protocol.get("extractor"),
        "torch": torch.__version__,
        "lightning": L.__version__,
        "cpu": platform.processor() or platform.machine(),
        "load_average_start": load_start,
        "load_average_end": os.getloadavg(),
        "total_seconds": time.perf_counter() - t0,
        "overrides": args.overrides,
        "set": args.set,
    }
    md = table(summary, floor, env, skipped)
    print(md)
    (args.out / "architectures.json").write_text(
        json.dumps(
            {"env": env, "floor": floor, "summary": summary, "runs": rows, "skipped": skipped}, indent=2
        )
        + "\n"
    )
    (args.out / "architectures.md").write_text(md + "\n\n" + json.dumps(env) + "\n")


if __name__ == "__main__":
    main()
