"""Training speed of each net at its CIFAR-10 preset width, on CIFAR-shaped random data.

Each preset (``experiment=<name>_cifar10``) is composed as a user would run it, with the
data swapped for 50,000 random uint8 3x32x32 images with random labels held in memory
(``SyntheticImages``: the preset's data options, no dataset files), and trained through
``ganforge.pipeline.build``'s module and Trainer: the preset's loss, n_critic, EMA,
regularizers and schedule callbacks, without checkpoints, sample grids, metrics, progress
bar or logger. After ``--warmup`` generator steps the clock runs for ``--steps`` more
(the device synchronised at both ends); real img/s = real images shown to D / time, the figure
StudioGAN's logs give. Peak memory: ``torch.cuda.max_memory_allocated`` on the GPU, the
process's peak RSS on the CPU (each preset runs in its own process, so one net's memory,
or a crash, does not reach the next). On the CPU a preset is stopped when its process passes
half the memory that was free (``--max-memory-gb``): R3GAN at its CIFAR width needs more than
20 GB at batch 64 there (R1 and R2 keep the graph of D's input gradient). ``--tiny`` shrinks
every net to test widths, for a dry run of the plumbing.

Published throughput: PyTorch-StudioGAN's CIFAR-10 training logs (batch 64, 5 D steps per
G step, fp32, data in memory), read off the elapsed time between steps 100 and 2,000, which
holds no evaluation: ``logs/CIFAR10/SNGAN-train-2020_09_18_14_37_00.log`` 1,900 G steps in
533 s = 1,141 real img/s (its SNGAN is class-conditional: cBN G, projection D; ganforge's
preset is unconditional), ``logs/CIFAR10/BigGAN-train-2021_01_15_14_48_48.log`` 1,900 G
steps in 772 s = 788 real img/s. The logs do not name the GPU; the issue quotes a TITAN
RTX-era card (the BigGAN preset cites 12 h 48 min on one TITAN RTX for the whole run).

    python benchmarks/net_speed.py --threads 1                      # CPU: 1 G step each, ~6 min on 2 cores
    python benchmarks/net_speed.py --device cuda --steps 100         # GPU (benchmarks/gpu_nets.sh runs both)
    python benchmarks/net_speed.py --device cuda --precision bf16-mixed --steps 300 --out results/net_speed_bf16
    python benchmarks/net_speed.py --presets sngan -- data.on_device=true
    python benchmarks/net_speed.py --merge out/a.json out/b.json --out out/all   # one table from several runs
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import lightning as L
import torch
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

from ganforge.data.base import GANDataModule, TensorDataset
from ganforge.pipeline import build

ROOT = Path(__file__).resolve().parents[1]
PRESETS = {
    "dcgan": "dcgan_cifar10",
    "sngan": "sngan_cifar10",
    "biggan": "biggan_cifar10",
    "r3gan": "r3gan_cifar10",
}
# real img/s, from the StudioGAN logs named in the docstring
PUBLISHED = {
    "sngan": (
        1141,
        "PyTorch-StudioGAN logs/CIFAR10/SNGAN-train-2020_09_18_14_37_00.log, steps 100-2,000 "
        "in 533 s, 5 D steps of 64 per step, fp32 (class-conditional SNGAN)",
    ),
    "biggan": (
        788,
        "PyTorch-StudioGAN logs/CIFAR10/BigGAN-train-2021_01_15_14_48_48.log, steps 100-2,000 "
        "in 772 s, 5 D steps of 64 per step, fp32",
    ),
}
# --tiny: the widths tests/test_presets.py shrinks the presets to; checks the plumbing only
TINY = {
    "dcgan": ["model.generator.width=4", "model.discriminator.width=4"],
    "sngan": ["model.generator.width=8", "model.discriminator.width=8"],
    "biggan": ["model.generator.width=4", "model.discriminator.width=4"],
    "r3gan": ["model.generator.width=8", "model.generator.cardinality=2"],
}
# callbacks that write files, evaluate or draw; what is left (schedules) is part of the recipe
NOT_TIMED = ("preemption", "model_checkpoint", "samples", "mode_coverage", "metrics", "rich_progress_bar")
RESULT = "NET_SPEED_RESULT "


class SyntheticImages(GANDataModule):
    """CIFAR-shaped random uint8 images and labels in memory; takes a data config's options."""

    # what GANDataModule takes; a data config's other keys (root, download, split) are unused
    OPTIONS = frozenset(
        (
            "batch_size",
            "image_size",
            "channels",
            "num_classes",
            "data_shape",
            "on_device",
            "hflip",
            "steps_per_batch",
        )
    )

    def __init__(self, size: int = 50_000, seed: int = 0, **options) -> None:
        super().__init__(**{k: v for k, v in options.items() if k in self.OPTIONS})
        self.size, self.seed = int(size), int(seed)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is None:
            g = torch.Generator().manual_seed(self.seed)
            shape = (self.size, self.channels, self.image_size, self.image_size)
            x = torch.randint(0, 256, shape, dtype=torch.uint8, generator=g)
            y = torch.randint(0, self.num_classes, (self.size,), generator=g) if self.num_classes else None
            self.train_set = TensorDataset(x, y)


class Stopwatch(L.Callback):
    """Runs from the first batch after ``warmup`` generator steps to the end of fit (at
    ``warmup + steps``, or wherever max_time ends it). The device is synchronised at both
    ends only, so the host may queue work ahead as it does in any run."""

    def __init__(self, warmup: int, cuda: bool) -> None:
        self.warmup, self.cuda = warmup, cuda
        self.start = self.stop = None
        self.at_start: tuple[int, int, int] = (0, 0, 0)
        self.at_stop: tuple[int, int, int] = (0, 0, 0)

    def _read(self, pl_module) -> tuple[float, tuple[int, int, int]]:
        if self.cuda:
            torch.cuda.synchronize()
        return time.perf_counter(), (pl_module.g_steps, pl_module.d_steps, pl_module.images_seen)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.start is None and pl_module.g_steps >= self.warmup:
            self.start, self.at_start = self._read(pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        if self.start is not None:
            self.stop, self.at_stop = self._read(pl_module)

    def result(self) -> dict:
        if self.stop is None:
            return {"timed_seconds": None, "g_steps_timed": 0}
        seconds = self.stop - self.start
        g, d, images = (b - a for a, b in zip(self.at_start, self.at_stop))
        return {
            "timed_seconds": seconds,
            "g_steps_timed": g,
            "d_steps_timed": d,
            "real_images_timed": images,
            "g_steps_per_s": g / seconds,
            "real_img_per_s": images / seconds,
        }


def max_time(seconds: int) -> str:
    """Lightning's max_time as DD:HH:MM:SS."""
    return f"{seconds // 86400:02d}:{seconds // 3600 % 24:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def available_memory_gb() -> float:
    with open("/proc/meminfo") as f:
        info = dict(line.split(":", 1) for line in f)
    return int(info["MemAvailable"].split()[0]) / 2**20


def guard_memory(limit_gb: float) -> None:
    """End this process when its resident memory passes ``limit_gb``: on a shared machine a
    net that does not fit (R3GAN at CIFAR width, batch 64, passes 20 GB on the CPU) must
    not take everyone else's memory with it."""
    page = os.sysconf("SC_PAGE_SIZE")

    def watch() -> None:
        while True:
            with open("/proc/self/statm") as f:
                rss_gb = int(f.read().split()[1]) * page / 2**30
            if rss_gb > limit_gb:
                message = f"resident memory {rss_gb:.1f} GB passed --max-memory-gb {limit_gb:.1f}: stopped"
                print(f"net_speed: {message}", file=sys.stderr, flush=True)
                os._exit(3)
            time.sleep(0.2)

    threading.Thread(target=watch, daemon=True).start()


def measure(args: argparse.Namespace, name: str) -> dict:
    """One preset in this process: compose, build, fit on synthetic data, time."""
    cuda = args.device == "cuda"
    if args.max_memory_gb:
        guard_memory(args.max_memory_gb)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(tempfile.mkdtemp(prefix=f"net_speed_{name}_"))
    overrides = [
        f"experiment={PRESETS[name]}",
        f"data.batch_size={args.batch}",
        f"trainer.accelerator={'gpu' if cuda else 'cpu'}",
        "trainer.devices=1",
        f"trainer.precision={args.precision}",
        f"trainer.max_steps={args.warmup + args.steps}",
        "trainer.max_epochs=-1",
        "++trainer.enable_checkpointing=false",
        "++trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        "logger=none",
        *([f"++trainer.max_time={max_time(args.max_seconds)}"] if args.max_seconds else []),
        *(TINY[name] if args.tiny else []),
        *args.overrides,
    ]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="train", return_hydra_config=True, overrides=overrides)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = cfg.paths.output_dir = str(out)
        cfg.hydra.runtime.cwd = str(ROOT)
        cfg.hydra.job.num = 0
        for key in NOT_TIMED:
            cfg.callbacks.pop(key, None)
    HydraConfig.instance().set_config(cfg)
    # the preset's data options on random images; build() makes the preset's datamodule too,
    # which reads no file until setup, and is left unused
    data = SyntheticImages(**{k: v for k, v in cfg.data.items() if not str(k).startswith("_")})
    data.setup("fit")
    rss_before = peak_rss_mb()
    objs = build(cfg)
    module, trainer = objs["model"], objs["trainer"]
    clock = Stopwatch(args.warmup, cuda)
    trainer.callbacks.append(clock)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    trainer.fit(module, datamodule=data)
    fit_seconds = time.perf_counter() - t0
    losses = {
        k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("train/") and "loss" in k
    }
    row = {
        "preset": name,
        "experiment": PRESETS[name],
        "tiny": args.tiny,
        "device": torch.cuda.get_device_name() if cuda else platform.processor() or platform.machine(),
        "precision": args.precision,
        "batch": args.batch,
        "n_critic": int(cfg.loss.n_critic),
        "warmup_g_steps": args.warmup,
        "g_steps": module.g_steps,
        "fit_seconds": fit_seconds,
        **clock.result(),
        "g_params": sum(p.numel() for p in module.generator.parameters()),
        "d_params": sum(p.numel() for p in module.discriminator.parameters()),
        "last_losses": losses,  # the last logged ones (every trainer.log_every_n_steps G steps)
        "losses_finite": all(map(math.isfinite, losses.values())) if losses else None,
        "weights_finite": all(bool(torch.isfinite(p).all()) for p in module.parameters()),
    }
    if cuda:
        row["peak_memory_mb"] = torch.cuda.max_memory_allocated() / 2**20
        row["peak_reserved_mb"] = torch.cuda.max_memory_reserved() / 2**20
    else:
        row["peak_memory_mb"] = peak_rss_mb()
        row["rss_before_build_mb"] = rss_before
    return row


def failure_reason(output: str) -> str:
    """The line of a failed child's output that says why: the memory guard's message, else
    the last line (a traceback's exception), not a warning printed before it. A ``|`` would
    split the markdown cell, so it becomes ``/``."""
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    ours = [line for line in lines if line.startswith("net_speed:")]
    return (ours or lines or ["no output"])[-1].replace("|", "/")


def run_child(args: argparse.Namespace, name: str) -> dict:
    """``measure`` in a fresh interpreter; a failure becomes a row that says so."""
    cmd = [sys.executable, __file__, "--one", name, "--device", args.device, "--batch", str(args.batch)]
    cmd += ["--steps", str(args.steps), "--warmup", str(args.warmup), "--precision", args.precision]
    cmd += [*(["--threads", str(args.threads)] if args.threads else []), *(["--tiny"] if args.tiny else [])]
    cmd += [*(["--max-memory-gb", str(args.max_memory_gb)] if args.max_memory_gb else [])]
    cmd += [*(["--max-seconds", str(args.max_seconds)] if args.max_seconds else []), "--", *args.overrides]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT):
            return json.loads(line[len(RESULT) :])
    return {
        "preset": name,
        "experiment": PRESETS[name],
        "precision": args.precision,
        "batch": args.batch,
        "error": f"exit {proc.returncode} after {time.perf_counter() - t0:.0f} s: "
        + failure_reason(proc.stderr or proc.stdout),
    }


def table(rows: list[dict], device_label: str) -> str:
    widths = (
        "TINY widths (--tiny: a plumbing check, not a speed)"
        if any(r.get("tiny") for r in rows)
        else "preset widths"
    )
    lines = [
        f"Real img/s on {device_label} (synthetic CIFAR-shaped data, {widths}); "
        "published: StudioGAN's CIFAR-10 logs, fp32, batch 64, one GPU of its day.",
        "",
        "| preset | precision | batch | n_critic | G steps timed | s | G steps/s | real img/s "
        "| published real img/s | peak memory MB | G params | D params | last losses finite | weights finite |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        head = f"| {r['preset']} | {r['precision']} | {r['batch']} "
        if "error" in r:
            lines.append(head + f"| failed: {r['error'][-300:]} |" + " |" * 10)
            continue
        pub = PUBLISHED.get(r["preset"])
        cells = [
            r["n_critic"],
            r["g_steps_timed"],
            *(
                (f"{r['timed_seconds']:.2f}", f"{r['g_steps_per_s']:.2f}", f"{r['real_img_per_s']:,.0f}")
                if r["timed_seconds"]
                else ("-", "-", "-")  # fit ended (max_time) before the warm-up did
            ),
            f"{pub[0]:,}" if pub else "-",
            f"{r['peak_memory_mb']:,.0f}",
            f"{r['g_params'] / 1e6:.2f}M",
            f"{r['d_params'] / 1e6:.2f}M",
            {True: "yes", False: "NO", None: "not logged"}[r["losses_finite"]],
            "yes" if r["weights_finite"] else "NO",
        ]
        lines.append(head + "".join(f"| {c} " for c in cells) + "|")
    lines += ["", *(f"Published {name}: {source}." for name, (_, source) in PUBLISHED.items())]
    return "\n".join(lines)


def write(rows: list[dict], env: dict, out: Path) -> None:
    label = ", ".join(
        dict.fromkeys(str(r.get("device", env.get("device"))) for r in rows if "error" not in r)
    )
    md = table(rows, label or str(env.get("device")))
    print(md)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"env": env, "rows": rows}, indent=2) + "\n")
    out.with_suffix(".md").write_text(md + "\n\n" + json.dumps(env) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--presets", nargs="+", default=list(PRESETS), choices=list(PRESETS))
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument(
        "--steps", type=int, default=None, help="timed G steps (default: 4 on cpu, 100 on cuda)"
    )
    parser.add_argument("--warmup", type=int, default=None, help="G steps before the clock (0 cpu, 10 cuda)")
    parser.add_argument("--precision", default="32-true", help="trainer.precision, e.g. bf16-mixed")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--max-seconds", type=int, default=None, help="Trainer max_time per preset")
    parser.add_argument(
        "--max-memory-gb",
        type=float,
        default=None,
        help="stop a preset whose process passes this RSS (default on cpu: half of what is free)",
    )
    parser.add_argument("--tiny", action="store_true", help="shrink every net (plumbing check, not a speed)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "net_speed")
    parser.add_argument(
        "--merge", nargs="+", type=Path, default=None, help="JSON files to merge into one table"
    )
    parser.add_argument("--one", choices=list(PRESETS), help=argparse.SUPPRESS)
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for every preset")
    args = parser.parse_args()
    cuda = args.device == "cuda"
    args.steps = args.steps if args.steps is not None else (100 if cuda else 1)
    args.warmup = args.warmup if args.warmup is not None else (10 if cuda else 0)
    if args.max_memory_gb is None and not cuda and not args.one:
        args.max_memory_gb = round(available_memory_gb() / 2, 1)
    if args.one:
        print(RESULT + json.dumps(measure(args, args.one)), flush=True)
        return
    if args.merge:
        parts = [json.loads(p.read_text()) for p in args.merge if p.is_file()]
        env = {"merged": [str(p) for p in args.merge], "parts": [p.get("env") for p in parts]}
        write([r for p in parts for r in p["rows"]], env, args.out)
        return
    if cuda and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no CUDA device")
    rows = []
    for name in args.presets:
        if not (ROOT / "conf" / "experiment" / f"{PRESETS[name]}.yaml").is_file():
            error = f"conf/experiment/{PRESETS[name]}.yaml not found"
            rows.append({"preset": name, "precision": args.precision, "batch": args.batch, "error": error})
        else:
            rows.append(run_child(args, name))
        print(json.dumps(rows[-1]), flush=True)
    env = {
        "device": args.device,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "lightning": L.__version__,
        "threads": args.threads or torch.get_num_threads(),
        "cores": os.cpu_count(),
        "load_average": os.getloadavg(),
        "steps": args.steps,
        "warmup": args.warmup,
        "overrides": args.overrides,
    }
    write(rows, env, args.out)


if __name__ == "__main__":
    main()
