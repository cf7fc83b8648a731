"""Framework overhead: ganforge's training against a hand-written PyTorch loop.

Both sides train the same generator, discriminator, loss, optimizers, EMA and data:
per iteration one discriminator step on a real minibatch and fresh noise, then one
generator step on fresh noise, then the EMA update. ganforge runs through
``pipeline.build`` with its default callbacks (checkpoint, sample grid, coverage,
progress bar, LR monitor) and the CSV logger, so the figure is what a user gets.

The two sides are interleaved, not run one after the other: after every loader batch
of the ganforge fit, a callback stops ganforge's clock and runs the plain loop for as
many generator steps, on its own copy of the nets. On a shared CPU whose speed drifts
by +-20 % between runs a minute apart, run-after-run ratios swung from 0.72 to 1.20;
interleaved at a tenth of a second both sides see the same machine. ganforge's clock
covers everything between two plain chunks: Lightning's loop, data fetching, every
callback (epoch ends included) and logging.

    python benchmarks/overhead.py                 # both cases, ~8 min on 2 cores
    python benchmarks/overhead.py --case mlp --steps 3000 --repeats 3
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
from hydra.utils import instantiate
from omegaconf import open_dict

from ganforge.modules.gan import GAN
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


def plain_loop(gan: GAN, datamodule, cfg):
    """The loop a careful user writes by hand with the same parts: returns ``step()``,
    one D step, one G step and the EMA update, on copies of ``gan``'s untrained nets."""
    G, D, loss = copy.deepcopy(gan.generator), copy.deepcopy(gan.discriminator), gan.loss
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    g_opt = instantiate(cfg.model.g_optimizer)(params=G.parameters())
    d_opt = instantiate(cfg.model.d_optimizer)(params=D.parameters())
    ema_p, g_p = list(G_ema.parameters()), list(G.parameters())
    ema_b, g_b = list(G_ema.buffers()), list(G.buffers())
    latent, batch_size = G.latent_dim, datamodule.batch_size

    def minibatches():  # the same kind of batches ganforge sees, one D step each
        while True:
            for x, _ in datamodule.train_dataloader():
                yield from x.split(batch_size)

    data, count = minibatches(), [0]

    def step() -> None:
        x = next(data)
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
        t = count[0] = count[0] + 1
        with torch.no_grad():
            torch._foreach_lerp_(ema_p, g_p, 1 - min(0.999, t / (9 + t)))
            if ema_b:
                torch._foreach_copy_(ema_b, g_b)

    return step


class Interleave(L.Callback):
    """After each loader batch: stop ganforge's clock, run the plain loop for the same
    number of generator steps, restart the clock. Also times ``training_step`` itself,
    to split ganforge's time into the loop body and everything around it."""

    def __init__(self, plain_step, warmup: int) -> None:
        self.plain_step, self.warmup = plain_step, warmup
        self.forge = self.plain = self.in_step = 0.0
        self.steps, self.last_g, self.resumed = 0, 0, None

    def wrap(self, module: GAN) -> None:
        step = module.training_step

        def timed(*args, **kwargs):
            t = time.perf_counter()
            try:
                return step(*args, **kwargs)
            finally:
                if self.resumed is not None:
                    self.in_step += time.perf_counter() - t

        module.training_step = timed

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        now = time.perf_counter()
        new = pl_module.g_steps - self.last_g
        self.last_g = pl_module.g_steps
        if self.resumed is None and pl_module.g_steps < self.warmup:
            for _ in range(new):  # warm the plain side up as well
                self.plain_step()
            return
        if self.resumed is not None:  # a timed batch: the plain loop takes as many steps
            self.forge += now - self.resumed
            self.steps += new
            t = time.perf_counter()
            for _ in range(new):
                self.plain_step()
            self.plain += time.perf_counter() - t
        self.resumed = time.perf_counter()


def run_pair(overrides: list[str], steps: int, warmup: int, out_dir: Path) -> dict:
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
    model, dm = objs["model"], objs["datamodule"]
    dm.setup("fit")
    clock = Interleave(plain_loop(model, dm, cfg), warmup)
    clock.wrap(model)
    objs["trainer"].callbacks.append(clock)
    objs["trainer"].fit(model, datamodule=dm)
    return {
        "plain_steps_per_s": clock.steps / clock.plain,
        "ganforge_steps_per_s": clock.steps / clock.forge,
        "ratio": clock.plain / clock.forge,
        "in_step_share": clock.in_step / clock.forge,
        "steps": clock.steps,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--case", choices=[*CASES, "all"], default="all")
    parser.add_argument("--steps", type=int, default=None, help="timed generator steps per run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for both sides")
    args = parser.parse_args()
    cases = list(CASES) if args.case == "all" else [args.case]
    tmp = ROOT / "outputs" / "benchmarks" / "overhead"
    rows = []
    for case in cases:
        steps = args.steps or (3000 if case == "mlp" else 60)
        warmup = max(10, steps // 10)
        runs = [
            run_pair([*CASES[case], *args.overrides], steps, warmup, tmp / f"{case}_{r}")
            for r in range(args.repeats)
        ]
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0] if k != "steps"}
        rows.append(
            {
                "case": case,
                "batch_size": int(CASES[case][-1].split("=")[1]),
                "steps_timed": runs[0]["steps"],
                **med,
                "ratios": [r["ratio"] for r in runs],
            }
        )
    env = {
        "torch": torch.__version__,
        "lightning": L.__version__,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "overrides": args.overrides,
    }
    lines = [
        "| case | batch | plain steps/s | ganforge steps/s | ganforge / plain (median; runs) "
        "| ganforge time in training_step |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['case']} | {r['batch_size']} | {r['plain_steps_per_s']:.1f} | "
            f"{r['ganforge_steps_per_s']:.1f} | {r['ratio']:.3f} "
            f"({', '.join(f'{x:.3f}' for x in r['ratios'])}) "
            f"| {100 * r['in_step_share']:.1f} % |"
        )
    table = "\n".join(lines)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "overhead.json").write_text(json.dumps({"env": env, "rows": rows}, indent=2))
    (args.out / "overhead.md").write_text(f"{table}\n\n{json.dumps(env)}\n")


if __name__ == "__main__":
    main()
