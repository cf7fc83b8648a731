"""Framework overhead: ganforge's training step against a hand-written PyTorch loop.

Both sides train the same generator, discriminator, loss, optimizers, EMA and
batches: per iteration one discriminator step on a real batch and fresh noise,
then one generator step on fresh noise, then the EMA update. ganforge runs
through ``pipeline.build`` with its default callbacks (checkpoint, sample grid,
coverage, progress bar, LR monitor) and the CSV logger, so the figure is what a
user gets. Steps per second are taken over the steady state (after a warm-up),
and the two sides alternate several times in one process so that a busy
machine slows both alike.

    python benchmarks/overhead.py                 # both cases, ~3 min on 2 cores
    python benchmarks/overhead.py --case mlp --steps 600 --repeats 5
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import time
from pathlib import Path

import lightning as L
import torch
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

from ganforge.pipeline import build

ROOT = Path(__file__).resolve().parents[1]
CASES = {
    "mlp": ["model=mlp", "data=ring", "data.batch_size=256"],
    "dcgan": ["model=dcgan", "data=digits", "data.batch_size=64"],
}


def compose_cfg(overrides: list[str], out_dir: Path):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="train", return_hydra_config=True, overrides=overrides)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(out_dir)
        cfg.hydra.runtime.cwd = str(out_dir)
        cfg.hydra.job.num = 0
    HydraConfig.instance().set_config(cfg)
    return cfg


class Clock(L.Callback):
    """Wall time between the end of the warm-up batch and the end of the last one, and
    the part of it spent inside ``training_step`` (the work a plain loop does too)."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.t0, self.g0, self.t1, self.steps = warmup, None, 0, 0.0, 0
        self.in_step = 0.0

    def wrap(self, module) -> None:
        step = module.training_step

        def timed(*args, **kwargs):
            t = time.perf_counter()
            try:
                return step(*args, **kwargs)
            finally:
                if self.t0 is not None:
                    self.in_step += time.perf_counter() - t

        module.training_step = timed

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.t0 is None:
            if pl_module.g_steps >= self.warmup:
                self.t0, self.g0 = time.perf_counter(), pl_module.g_steps
            return
        self.t1, self.steps = time.perf_counter(), pl_module.g_steps - self.g0

    @property
    def step_share(self) -> float:
        return self.in_step / (self.t1 - self.t0)


def run_ganforge(overrides, steps, warmup, out_dir) -> tuple[float, float]:
    cfg = compose_cfg(
        [
            *overrides,
            f"trainer.max_steps={steps + warmup}",
            "trainer.max_epochs=-1",
            "trainer.accelerator=cpu",
        ],
        out_dir,
    )
    objs = build(cfg)
    clock = Clock(warmup)
    clock.wrap(objs["model"])
    trainer = objs["trainer"]
    trainer.callbacks.append(clock)
    trainer.fit(objs["model"], datamodule=objs["datamodule"])
    return clock.steps / (clock.t1 - clock.t0), clock.step_share


def run_plain(overrides, steps, warmup, out_dir) -> float:
    """The loop a careful user writes by hand with the same parts."""
    cfg = compose_cfg(overrides, out_dir)
    objs = build(cfg)  # only to get identical networks, loss and data
    gan, dm = objs["model"], objs["datamodule"]
    dm.setup("fit")
    G, D, loss = gan.generator, gan.discriminator, gan.loss
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    g_opt = gan.g_optimizer_factory(params=G.parameters())
    d_opt = gan.d_optimizer_factory(params=D.parameters())
    ema_p, g_p = list(G_ema.parameters()), list(G.parameters())
    ema_b, g_b = list(G_ema.buffers()), list(G.buffers())
    batches = dm.train_dataloader()
    latent, t0 = G.latent_dim, None

    def minibatches():  # the same batches ganforge sees, one D step each
        while True:
            for x, _ in batches:
                yield from x.split(dm.batch_size)

    it = minibatches()
    for step in range(steps + warmup):
        if step == warmup:
            t0 = time.perf_counter()
        x = next(it)
        with torch.no_grad():
            fake = G(torch.randn(x.shape[0], latent))
        d_loss = loss.d_loss(D(x), D(fake))
        d_opt.zero_grad(set_to_none=True)
        d_loss.backward()
        d_opt.step()
        D.requires_grad_(False)
        g_loss = loss.g_loss(D(G(torch.randn(x.shape[0], latent))))
        g_opt.zero_grad(set_to_none=True)
        g_loss.backward()
        g_opt.step()
        D.requires_grad_(True)
        with torch.no_grad():
            torch._foreach_lerp_(ema_p, g_p, 1 - min(0.999, (1 + step) / (10 + step)))
            if ema_b:
                torch._foreach_copy_(ema_b, g_b)
    return steps / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--case", choices=[*CASES, "all"], default="all")
    parser.add_argument("--steps", type=int, default=None, help="timed generator steps per run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    cases = list(CASES) if args.case == "all" else [args.case]
    tmp = ROOT / "outputs" / "benchmarks" / "overhead"
    rows = []
    for case in cases:
        steps = args.steps or (3000 if case == "mlp" else 60)
        warmup = max(10, steps // 10)
        plain, forge, shares = [], [], []
        for r in range(args.repeats):
            torch.manual_seed(r)
            plain.append(run_plain(CASES[case], steps, warmup, tmp / f"{case}_plain"))
            speed, share = run_ganforge(CASES[case], steps, warmup, tmp / f"{case}_forge_{r}")
            forge.append(speed)
            shares.append(share)
        ratios = [f / p for f, p in zip(forge, plain)]
        rows.append(
            {
                "case": case,
                "batch_size": int(CASES[case][-1].split("=")[1]),
                "steps_timed": steps,
                "plain_steps_per_s": statistics.median(plain),
                "ganforge_steps_per_s": statistics.median(forge),
                "ratio_median": statistics.median(ratios),
                "ratios": ratios,
                # noise only slows a run down: the fastest run of each side is the
                # least disturbed estimate of its speed
                "ratio_best": max(forge) / max(plain),
                # unaffected by how fast the machine runs at the moment: the share of
                # ganforge's wall time inside training_step, i.e. the loop body a
                # plain loop runs too; the rest is Lightning, callbacks and logging
                "in_step_share_median": statistics.median(shares),
            }
        )
    env = {
        "torch": torch.__version__,
        "lightning": L.__version__,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
    }
    lines = [
        "| case | batch | plain steps/s | ganforge steps/s | ratio (median of runs) "
        "| ratio of best runs | ganforge time in training_step |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['case']} | {r['batch_size']} | {r['plain_steps_per_s']:.1f} | "
            f"{r['ganforge_steps_per_s']:.1f} | {r['ratio_median']:.3f} "
            f"({', '.join(f'{x:.3f}' for x in r['ratios'])}) | {r['ratio_best']:.3f} "
            f"| {100 * r['in_step_share_median']:.1f} % |"
        )
    table = "\n".join(lines)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "overhead.json").write_text(json.dumps({"env": env, "rows": rows}, indent=2))
    (args.out / "overhead.md").write_text(f"{table}\n\n{json.dumps(env)}\n")


if __name__ == "__main__":
    main()
