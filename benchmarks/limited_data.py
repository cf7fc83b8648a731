"""GANs on a few hundred images: augmentation and LeCam on subsets of the embedded digits.

Zhao et al. 2020 (DiffAugment) report on CIFAR-10 with StyleGAN2 that the gain from
augmenting what the discriminator sees grows as the data shrink (FID 11.07 -> 9.89 at 100 %,
23.08 -> 12.15 at 20 %, 36.02 -> 14.50 at 10 %). This script asks the same of ganforge on
the digits, at a budget a CPU can afford.

Data: a seeded permutation of the 1,797 digits (``ganforge.data.subset``, seed 0); its last ``HELD_OUT`` images are never trained on (the memorisation check's
held-out set), the first 1,500 are the training pool, and each run trains on the first
100 %, 20 % or 10 % of the pool (``data.subset`` = 1500, 300, 150: nested subsets).

Runs: the default run (``model=dcgan loss=vanilla``, digits at 32x32) at width ``--width``
(32: a quarter of the default width's arithmetic, so 36 runs fit in about 40 minutes on 2
cores: 0.10 s a generator step at one thread against 0.35 at width 64) with no
augmentation, DiffAugment (color, translation, cutout) or ADA, then, per fraction, the
better of the two augmentations (lower mean FID) plus LeCam (``+reg=lecam``); the same
fixed number of generator steps for every run; ``--seeds`` seeds each.

ADA's p may move from 0 to 1 in ``--ada-kimg`` thousand images. The paper's 500 would let p
reach only 0.13 in this budget's 64k images, so the default (20) lets it cross the whole
range about three times; r_t's target is the paper's 0.6.

Scores, of the EMA generator, with the digits extractor (``metrics=digits``'s protocol):
FID of 2,000 samples against all 1,797 digits; improved precision and recall (k = 3) and
density and coverage (k = 5) against the same real features; and memorisation: the share of
samples whose nearest training image, in feature space, is closer than their nearest
held-out image, with both sets cut to the same size (0.5: no sign of copying; 1.0: every
sample is nearest a training image). The real-data floor is FID between two random halves
of the digits (as benchmarks/architectures.py).

    python benchmarks/limited_data.py --jobs 2                    # 3 fractions x 4 x 3 seeds
    python benchmarks/limited_data.py --jobs 2 --resume           # only what is not on record
    python benchmarks/limited_data.py --steps 20 --seeds 0 --fractions 0.1 --out /tmp/ld   # smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import lightning as L
import torch
from architectures import compose_cfg, real_floor
from hydra.utils import instantiate

from ganforge.data.digits import DigitsDataModule
from ganforge.data.subset import held_out_indices, subset_indices
from ganforge.metrics.extractors import extractor_in_channels, features_and_logits
from ganforge.metrics.manifold import memorisation_share
from ganforge.metrics.protocol import to_extractor_input
from ganforge.pipeline import build

ROOT = Path(__file__).resolve().parents[1]
N_DIGITS, HELD_OUT = 1797, 297
POOL = N_DIGITS - HELD_OUT  # 1,500 training images at "100 %"
METHODS = {
    "none": [],
    "diffaugment": ["model.augment=diffaugment"],
    "ada": ["model.augment=ada"],  # options added in run(): the speed of --ada-kimg
}


def method_overrides(method: str, ada_kimg: float) -> list[str]:
    """Overrides of a method name: none, diffaugment, ada, ``ada-t<target>`` (ADA steering to
    another r_t), each optionally with ``+lecam``."""
    augment, _, extra = method.partition("+")
    base, _, target = augment.partition("-t")
    out = list(METHODS[base])
    if base == "ada":
        target_option = f",target:{float(target):g}" if target else ""
        out.append(f"model.augment_options={{speed_kimg:{ada_kimg:g}{target_option}}}")
    elif target:
        raise ValueError(f"unknown method {method!r}: only ada takes a target")
    if extra == "lecam":
        out.append("+reg=lecam")
    elif extra:
        raise ValueError(f"unknown method {method!r}")
    return out


def base_method(method: str) -> str:
    return method.split("+")[0].partition("-t")[0]


@torch.no_grad()
def features(extractor, images: torch.Tensor, in_channels: int, batch: int = 500) -> torch.Tensor:
    parts = [
        features_and_logits(extractor, to_extractor_input(images[i : i + batch], in_channels))[0].float()
        for i in range(0, len(images), batch)
    ]
    return torch.cat(parts)


def run(
    fraction: float, method: str, seed: int, steps: int, threads: int, ada_kimg: float, width: int
) -> dict:
    torch.set_num_threads(threads)
    out = Path(tempfile.mkdtemp(prefix=f"ld_{fraction}_{method}_{seed}_"))
    count = round(fraction * POOL)
    cfg = compose_cfg(
        [
            *method_overrides(method, ada_kimg),
            f"model.generator.width={width}",
            f"model.discriminator.width={width}",
            f"data.subset={count}",
            "data.subset_seed=0",
            f"seed={seed}",
            "trainer=cpu",
            "trainer.max_epochs=-1",
            f"trainer.max_steps={steps}",
            "++trainer.enable_checkpointing=false",
            "++trainer.enable_progress_bar=false",
            "trainer.enable_model_summary=false",
            "callbacks=none",
            "logger=none",
            "metrics=digits",
        ],
        out,
    )
    objs = build(cfg)
    module, dm, trainer = objs["model"], objs["datamodule"], objs["trainer"]
    start = time.perf_counter()
    trainer.fit(module, datamodule=dm)
    train_seconds = time.perf_counter() - start
    # scored against every digit, not the subset it trained on
    evaluator = instantiate(cfg.metrics).evaluator
    full = DigitsDataModule(image_size=int(cfg.data.image_size))
    evaluator.prepare(full, module.device)
    scores = evaluator.evaluate(module)
    # memorisation: nearest training vs nearest held-out image of each sample
    x = full.real_samples()
    train_x, held_x = x[subset_indices(len(x), count, 0)], x[held_out_indices(len(x), HELD_OUT, 0)]
    g = torch.Generator().manual_seed(evaluator.seed)
    fakes = torch.cat([module.sample(500, generator=g) for _ in range(4)])
    in_ch = extractor_in_channels(evaluator.extractor)
    f_fake, f_train, f_held = (features(evaluator.extractor, t, in_ch) for t in (fakes, train_x, held_x))
    ada = getattr(module, "augment", None)
    return {
        "fraction": fraction,
        "images": count,
        "method": method,
        "seed": seed,
        "steps": steps,
        "threads": threads,
        "ada_kimg": ada_kimg,
        "width": width,
        "train_seconds": train_seconds,
        "g_steps": module.g_steps,
        "kimg": module.kimg,
        "ada_p": float(ada.p) if ada is not None and hasattr(ada, "p") else None,
        **scores,
        "memorisation": memorisation_share(f_fake, f_train, f_held, seed=0),
        "protocol": evaluator.protocol(),
    }


def run_key(r: dict) -> tuple:
    return (float(r["fraction"]), r["method"], r["seed"], r["steps"], float(r["ada_kimg"]), r["width"])


def on_record(path: Path) -> list[dict]:
    rows = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                print(f"{path.name}: skipping an unreadable line: {line[:80]!r}")
    return list({run_key(r): r for r in rows}.values())


def mean_std(values: list[float]) -> list[float]:
    return [statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0]


SCORES = ("fid", "precision", "recall", "density", "coverage", "memorisation")


def summarise(rows: list[dict]) -> list[dict]:
    out = []
    for key in dict.fromkeys((r["fraction"], r["method"]) for r in rows):
        rs = [r for r in rows if (r["fraction"], r["method"]) == key]
        s = {
            "fraction": key[0],
            "images": rs[0]["images"],
            "method": key[1],
            "seeds": [r["seed"] for r in rs],
        }
        for name in SCORES:
            if all(name in r for r in rs):
                s[name] = mean_std([r[name] for r in rs])
                s[f"{name}_runs"] = [r[name] for r in rs]
        ps = [r["ada_p"] for r in rs if r.get("ada_p") is not None]
        s["ada_p"] = mean_std(ps) if ps else None
        out.append(s)
    return sorted(
        out, key=lambda s: (-s["fraction"], list(METHODS).index(base_method(s["method"])), s["method"])
    )


def gains(summary: list[dict]) -> dict:
    """FID of no augmentation minus the best method's, per fraction (how the gain grows)."""
    out = {}
    for fraction in dict.fromkeys(s["fraction"] for s in summary):
        rows = {s["method"]: s["fid"][0] for s in summary if s["fraction"] == fraction and "fid" in s}
        if "none" in rows and len(rows) > 1:
            best = min((m for m in rows if m != "none"), key=rows.get)
            out[str(fraction)] = {"best": best, "gain": rows["none"] - rows[best], "none": rows["none"]}
    return out


def table(summary: list[dict], floor: dict, env: dict) -> str:
    lines = [
        f"DCGAN (the default run at width {env['width']}) on subsets of the digits, "
        f"{env['steps']} generator steps per run, "
        f"{env['seeds']} seed(s); EMA generator, digits extractor, {env['n_fake']} samples against all "
        f"{env['n_real']} digits; mean ± std over seeds. Memorisation 0.5: no sign of copying.",
        "",
        "| data | method | FID | precision | recall | density | coverage | memorisation | ADA p at end |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summary:
        cells = [
            f"{s[n][0]:.3f} ± {s[n][1]:.3f}" if n != "fid" else f"{s[n][0]:.2f} ± {s[n][1]:.2f}"
            for n in SCORES
            if n in s
        ]
        p = f"{s['ada_p'][0]:.2f}" if s.get("ada_p") else ""
        lines.append(
            f"| {s['fraction'] * 100:g} % ({s['images']}) | {s['method']} | "
            + " | ".join(cells)
            + f" | {p} |"
        )
    lines.append(
        f"| real-data floor | two halves of the digits, {len(floor['fid'])} split(s) "
        f"| {floor['mean']:.2f} ± {floor['std']:.2f} | | | | | | |"
    )
    return "\n".join(lines)


def _run_job(job: tuple) -> dict:
    return run(*job)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--fractions", nargs="+", type=float, default=[1.0, 0.2, 0.1])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=1000, help="generator steps per run")
    parser.add_argument(
        "--ada-kimg", type=float, default=20.0, help="thousand images for ADA's p to go 0 -> 1"
    )
    parser.add_argument("--width", type=int, default=32, help="DCGAN width of G and D (the default run: 64)")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch threads per run (cores // jobs)")
    parser.add_argument("--floor-splits", type=int, default=5)
    parser.add_argument(
        "--methods",
        nargs="+",
        default=list(METHODS),
        help="none, diffaugment, ada, or ada-t<target> (e.g. ada-t0.9: ADA steering r_t to 0.9)",
    )
    parser.add_argument("--no-lecam", action="store_true", help="skip the best-augmentation + LeCam runs")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--resume", action="store_true", help="keep the runs on record, run the rest")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    threads = args.threads or max(1, cores // args.jobs)
    args.out.mkdir(parents=True, exist_ok=True)
    record = args.out / "limited_data_runs.jsonl"
    rows = on_record(record) if args.resume else []
    if not args.resume:
        record.write_text("")
    t0, load_start = time.perf_counter(), os.getloadavg()

    def execute(jobs: list[tuple]) -> None:
        done = {run_key(r) for r in rows}
        todo = [j for j in jobs if (j[0], j[1], j[2], j[3], j[5], j[6]) not in done]
        print(f"{len(jobs) - len(todo)} run(s) on record, {len(todo)} to run", flush=True)

        def collect(job, result) -> None:
            if isinstance(result, dict):
                rows.append(result)
                with record.open("a") as f:
                    f.write(json.dumps(result) + "\n")
                print(json.dumps({k: v for k, v in result.items() if k != "protocol"}), flush=True)
            else:
                print(f"FAILED {job}: {result}", flush=True)

        if args.jobs > 1:
            import multiprocessing as mp

            with mp.get_context("spawn").Pool(args.jobs) as pool:
                pending = [(job, pool.apply_async(_run_job, (job,))) for job in todo]
                for job, res in pending:
                    try:
                        collect(job, res.get())
                    except Exception as err:  # one failed run must not lose the others
                        collect(job, f"{type(err).__name__}: {err}")
        else:
            for job in todo:
                try:
                    collect(job, run(*job))
                except Exception as err:
                    collect(job, f"{type(err).__name__}: {err}")

    def job(fraction, method, seed):
        return (fraction, method, seed, args.steps, threads, args.ada_kimg, args.width)

    execute([job(f, m, s) for f in args.fractions for m in args.methods for s in args.seeds])
    if not args.no_lecam:
        ran = [r for r in rows if r["steps"] == args.steps and r["fraction"] in args.fractions]
        lecam = []
        for f in args.fractions:
            fids = {
                m: statistics.mean(r["fid"] for r in ran if r["fraction"] == f and r["method"] == m)
                for m in ("diffaugment", "ada")
                if any(r["fraction"] == f and r["method"] == m for r in ran)
            }
            if fids:
                best = min(fids, key=fids.get)
                lecam += [job(f, f"{best}+lecam", s) for s in args.seeds]
        execute(lecam)
    torch.set_num_threads(threads)
    floor = real_floor(args.floor_splits)
    wanted = [r for r in rows if r["steps"] == args.steps and r["fraction"] in args.fractions]
    wanted = [
        r
        for r in wanted
        if r["seed"] in args.seeds and float(r["ada_kimg"]) == args.ada_kimg and r["width"] == args.width
    ]
    summary = summarise(wanted)
    protocol = wanted[0]["protocol"] if wanted else {}
    env = {
        "steps": args.steps,
        "width": args.width,
        "seeds": len(args.seeds),
        "ada_kimg": args.ada_kimg,
        "jobs": args.jobs,
        "threads": threads,
        "cores": cores,
        "n_fake": protocol.get("n_fake"),
        "n_real": protocol.get("n_real"),
        "held_out": HELD_OUT,
        "pool": POOL,
        "torch": torch.__version__,
        "lightning": L.__version__,
        "cpu": platform.processor() or platform.machine(),
        "load_average_start": load_start,
        "load_average_end": os.getloadavg(),
        "total_seconds": time.perf_counter() - t0,
    }
    md = table(summary, floor, env)
    result = {"env": env, "floor": floor, "summary": summary, "gains": gains(summary), "runs": wanted}
    print(md)
    print(json.dumps(result["gains"], indent=2))
    (args.out / "limited_data.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "limited_data.md").write_text(md + "\n\n" + json.dumps(env) + "\n")


if __name__ == "__main__":
    main()
