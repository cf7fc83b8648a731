"""DDP on the CPU: one process against two, and ganforge's strategy against find_unused_parameters.

DCGAN on 32x32 digits (the default model and data), per rank a loader batch of 64, one
discriminator and one generator step per batch; no callbacks, loggers or metrics, so
the figure is the training loop. Cases, each a fresh process (DDP cases: two, started
by Lightning, gloo):

    single-1t     1 process, 1 thread                       (the baseline)
    single-2t     1 process, 2 threads                      (the same cores as 2 ranks)
    ganforge      2 ranks x 1 thread, GANDDPStrategy (trainer=ddp_sim): one DDP per network
    ganforge-32   as ganforge with 32 per rank: the global batch of the single cases
    find_unused   2 ranks x 1 thread, Lightning's ddp_find_unused_parameters_true wrapping
                  the whole module; the module calls manual_backward instead of
                  loss.backward (a subclass here: that is what this strategy needs)

Time per batch is the median interval between rank 0's batch ends after a warm-up;
images/s counts every rank's images. Cases alternate over repeats so that load from
other programs falls on all of them alike. After each DDP run the ranks' parameters and
buffers are compared with rank 0's (``ganforge.distributed.check_ddp_consistency``).

    python benchmarks/ddp.py                      # ~6 min on 2 cores
    python benchmarks/ddp.py --steps 40 --repeats 1 --cases single-1t ganforge find_unused
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMON = ["model=dcgan", "data=digits", "callbacks=none", "logger=none", "metrics=none"]
CASES = {
    "single-1t": {"threads": 1, "overrides": ["trainer=cpu", "data.batch_size=64"]},
    "single-2t": {"threads": 2, "overrides": ["trainer=cpu", "data.batch_size=64"]},
    "ganforge": {"threads": 1, "overrides": ["trainer=ddp_sim", "data.batch_size=64"]},
    "ganforge-32": {"threads": 1, "overrides": ["trainer=ddp_sim", "data.batch_size=32"]},
    "find_unused": {
        "threads": 1,
        "overrides": ["trainer=ddp_sim", "data.batch_size=64"],
        "find_unused": True,
    },
}
# the names of BatchNorm running statistics, which whole-module DDP does not keep in step
BUFFERS = r".*(running_mean|running_var|num_batches_tracked)"


# ---------------------------------------------------------------------- worker (every rank runs this)
def _gan_with_manual_backward():
    from ganforge.modules.gan import GAN

    class ManualBackwardGAN(GAN):
        """GAN whose backward goes through Lightning (``manual_backward``), as the whole-module
        DDP needs: the strategy prepares DDP's reducer for each backward there."""

        def _backward(self, loss):
            self.manual_backward(loss)

    return ManualBackwardGAN


class Clock:
    """Lightning callback (built lazily, after the imports) recording rank 0's batch-end times."""

    @staticmethod
    def make(warmup: int, out: Path, case: str, world: int):
        import lightning as L

        from ganforge.distributed import check_ddp_consistency

        class _Clock(L.Callback):
            def __init__(self):
                self.ends: list[tuple[float, float]] = []

            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
                if pl_module.g_steps > warmup:
                    self.ends.append((time.perf_counter(), time.process_time()))

            def on_train_end(self, trainer, pl_module):
                params = check_ddp_consistency(pl_module, ignore=BUFFERS)
                everything = check_ddp_consistency(pl_module)
                if not trainer.is_global_zero:
                    return
                gaps = [b[0] - a[0] for a, b in zip(self.ends, self.ends[1:])]
                cpu = [b[1] - a[1] for a, b in zip(self.ends, self.ends[1:])]
                batch = trainer.datamodule.batch_size
                record = {
                    "case": case,
                    "world_size": world,
                    "batch_per_rank": batch,
                    "threads": __import__("torch").get_num_threads(),
                    "batches_timed": len(gaps),
                    "s_per_batch_median": statistics.median(gaps),
                    "s_per_batch_mean": statistics.fmean(gaps),
                    "cpu_s_per_batch_median": statistics.median(cpu),
                    "loadavg_1m": os.getloadavg()[0],
                    "params_equal": not params,
                    "buffers_equal": not [n for n in everything if n not in params],
                }
                record["images_per_s"] = batch * world / record["s_per_batch_median"]
                with out.open("a") as f:
                    f.write(json.dumps(record) + "\n")

        return _Clock()


def worker(case: str, steps: int, warmup: int, out: Path) -> None:
    import torch
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf, open_dict

    from ganforge.pipeline import build

    spec = CASES[case]
    torch.set_num_threads(spec["threads"])
    run_dir = Path(tempfile.gettempdir()) / "ganforge-bench-ddp" / case
    overrides = [
        *COMMON,
        *spec["overrides"],
        f"trainer.max_steps={steps + warmup + 1}",
        "trainer.max_epochs=-1",
    ]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="train", return_hydra_config=True, overrides=overrides)
    with open_dict(cfg):
        cfg.paths.root_dir = str(ROOT)
        cfg.paths.output_dir = str(run_dir)
        cfg.hydra.runtime.output_dir = str(run_dir)
        cfg.hydra.runtime.cwd = str(ROOT)
        cfg.trainer.enable_progress_bar = False
        cfg.trainer.enable_model_summary = False
        if spec.get("find_unused"):
            cfg.trainer.strategy = "ddp_find_unused_parameters_true"
            globals()["ManualBackwardGAN"] = _gan_with_manual_backward()
            cfg.model._target_ = f"{__name__}.ManualBackwardGAN"
    HydraConfig.instance().set_config(cfg)
    resolved = {k: v for k, v in cfg.items() if k != "hydra"}
    cfg = OmegaConf.create(OmegaConf.to_container(OmegaConf.create(resolved), resolve=True))
    # not a Hydra app: Lightning must start the other rank with this very command line
    HydraConfig.instance().cfg = None
    objs = build(cfg)
    world = objs["trainer"].world_size
    objs["trainer"].callbacks.append(Clock.make(warmup, out, case, world))
    objs["trainer"].fit(objs["model"], datamodule=objs["datamodule"])


# ---------------------------------------------------------------------- driver
def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument("--steps", type=int, default=30, help="timed batches (G steps) per run")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--worker", choices=list(CASES), help=argparse.SUPPRESS)
    parser.add_argument("--record", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.steps, args.warmup, args.record)
        return

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        record = Path(tmp) / "records.jsonl"
        for repeat in range(args.repeats):
            for case in args.cases:
                env = {**os.environ, "OMP_NUM_THREADS": str(CASES[case]["threads"])}
                command = [sys.executable, __file__, "--worker", case, "--record", str(record)]
                command += ["--steps", str(args.steps), "--warmup", str(args.warmup)]
                done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=ROOT)
                if done.returncode != 0:
                    sys.exit(f"{case} failed:\n{done.stderr[-3000:]}")
                print(f"repeat {repeat}: {case} done", file=sys.stderr)
        records = [json.loads(line) for line in record.read_text().splitlines()]
    load_after = os.getloadavg()
    rows = []
    base = None
    for case in args.cases:
        runs = [r for r in records if r["case"] == case]
        row = {
            **{k: runs[0][k] for k in ("case", "world_size", "batch_per_rank", "threads")},
            "ms_per_batch": 1000 * statistics.median(r["s_per_batch_median"] for r in runs),
            "ms_per_batch_runs": [round(1000 * r["s_per_batch_median"], 1) for r in runs],
            "cpu_ms_per_batch": 1000 * statistics.median(r["cpu_s_per_batch_median"] for r in runs),
            "loadavg_1m_runs": [round(r["loadavg_1m"], 1) for r in runs],
            "images_per_s": statistics.median(r["images_per_s"] for r in runs),
            "params_equal": all(r["params_equal"] for r in runs),
            "buffers_equal": all(r["buffers_equal"] for r in runs),
        }
        base = base or row
        row["images_per_s_vs_single_1t"] = row["images_per_s"] / base["images_per_s"]
        rows.append(row)
    import torch

    env = {
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in load_after],
        "steps": args.steps,
        "repeats": args.repeats,
    }
    lines = [
        "| case | ranks | batch/rank | threads/rank | wall ms per batch (runs) | images/s | vs single-1t "
        "| rank-0 CPU ms per batch | params equal | buffers equal | load (1 min) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        eq = (lambda b: "yes" if b else "NO") if r["world_size"] > 1 else (lambda b: "-")
        lines.append(
            f"| {r['case']} | {r['world_size']} | {r['batch_per_rank']} | {r['threads']} | "
            f"{r['ms_per_batch']:.1f} ({', '.join(map(str, r['ms_per_batch_runs']))}) | "
            f"{r['images_per_s']:.0f} | {r['images_per_s_vs_single_1t']:.2f}x | {r['cpu_ms_per_batch']:.1f} | "
            f"{eq(r['params_equal'])} | {eq(r['buffers_equal'])} | {', '.join(map(str, r['loadavg_1m_runs']))} |"
        )
    by_case = {r["case"]: r for r in rows}
    if "ganforge" in by_case and "find_unused" in by_case:
        wall = by_case["find_unused"]["ms_per_batch"] / by_case["ganforge"]["ms_per_batch"]
        cpu = by_case["find_unused"]["cpu_ms_per_batch"] / by_case["ganforge"]["cpu_ms_per_batch"]
        lines.append(f"\nfind_unused / ganforge per batch: wall {wall:.3f}, rank-0 CPU {cpu:.3f}")
    table = "\n".join(lines)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ddp.json").write_text(json.dumps({"env": env, "rows": rows}, indent=2))
    (args.out / "ddp.md").write_text(f"{table}\n\n{json.dumps(env)}\n")


if __name__ == "__main__":
    main()
