"""Run by tests/test_ddp.py in its own process: penalties through the DDP wrappers, and the image budget.

``python tests/ddp_worker_penalties.py <out>`` trains a tiny GAN on 2 gloo ranks with
``GANDDPStrategy`` from a plain script (Lightning's own launcher re-runs it for rank 1):
a Wasserstein critic with a gradient penalty and R1, both of which differentiate through
the wrapper inside the step (double backward). After the first loader batch each rank
replays its own discriminator step on plain copies of the nets, with the random state it
started from, and compares the mean of the ranks' replayed gradients with the gradient
DDP left on the critic. The run then goes on to ``max_kimg``, counted over both ranks.
Each rank writes ``<out>/penalties<rank>.json``.
"""

from __future__ import annotations

import copy
import functools
import json
import sys
from pathlib import Path

import lightning as L
import torch
import torch.distributed as dist

from ganforge.data.toy2d import Toy2DDataModule
from ganforge.losses import WassersteinLoss
from ganforge.modules.gan import GAN
from ganforge.nets import mlp
from ganforge.regularizers import GradientPenalty, R1Penalty
from ganforge.strategy import GANDDPStrategy

BATCH, MAX_KIMG = 32, 0.192  # 0.192 kimg = 3 steps of 2 x 32 images (6 of 32 in one process)


def build() -> GAN:
    torch.manual_seed(0)
    adam = functools.partial(torch.optim.Adam, lr=1e-3, betas=(0.0, 0.9))
    return GAN(
        mlp.Generator((2,), latent_dim=2, hidden=16, depth=2),
        mlp.Discriminator((2,), hidden=16, depth=2, norm="none"),
        adam,
        adam,
        WassersteinLoss(),
        regularizers={"gp": GradientPenalty(10.0), "r1": R1Penalty(1.0)},
        max_kimg=MAX_KIMG,
    )


class Replay(L.Callback):
    def __init__(self, out: Path) -> None:
        self.out, self.found = out, {}

    def on_train_batch_start(self, trainer, gan, batch, batch_idx):
        if batch_idx == 0:
            self.start = {
                "rng": torch.get_rng_state(),
                "G": copy.deepcopy(gan.generator),
                "D": copy.deepcopy(gan.discriminator),
                "real": batch[0].clone(),
            }

    def on_train_batch_end(self, trainer, gan, outputs, batch, batch_idx):
        if batch_idx != 0:
            return
        # what GAN.discriminator_step computes, on plain nets, from the same random state
        s, now = self.start, torch.get_rng_state()
        torch.set_rng_state(s["rng"])
        real, D = s["real"], s["D"]
        with torch.no_grad():
            fake = s["G"](torch.randn(len(real), 2))
        loss = gan.loss.d_loss(D(real), D(fake))
        for reg in gan.regularizers.values():
            loss = loss + reg.weight * reg(D, real, fake)
        local = torch.autograd.grad(loss, list(D.parameters()))
        torch.set_rng_state(now)  # training goes on with its own stream
        mean = [g.clone() for g in local]
        for g in mean:
            dist.all_reduce(g)
            g /= trainer.world_size
        ddp = [p.grad for p in gan.discriminator.parameters()]
        self.found["max_diff_from_mean"] = max(float((a - b).abs().max()) for a, b in zip(ddp, mean))
        self.found["max_diff_from_local"] = max(float((a - b).abs().max()) for a, b in zip(ddp, local))

    def on_train_end(self, trainer, gan):
        self.found |= {"d_steps": gan.d_steps, "images_seen": gan.images_seen, "kimg": gan.kimg}
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / f"penalties{trainer.global_rank}.json").write_text(json.dumps(self.found))


def main(out: str) -> None:
    torch.set_num_threads(1)
    L.seed_everything(0)  # each rank then draws its own noise (GANDDPStrategy)
    trainer = L.Trainer(
        accelerator="cpu",
        devices=2,
        strategy=GANDDPStrategy(process_group_backend="gloo"),
        max_epochs=-1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[Replay(Path(out))],
    )
    data = Toy2DDataModule(kind="ring", batch_size=BATCH, samples_per_epoch=BATCH * 64)
    trainer.fit(build(), datamodule=data)


if __name__ == "__main__":
    main(sys.argv[1])
