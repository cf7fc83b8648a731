"""Mode coverage after training on the 2-D ring (PacGAN's protocol), with fixed seeds.

The default loss (vanilla, non-saturating) with the mlp nets on ``data=ring``:
4,000 generator steps, about 40 s on one free CPU core.
"""

from __future__ import annotations

import pytest
import torch

from ganforge.metrics.coverage import mode_coverage
from ganforge.pipeline import train


@pytest.mark.slow
def test_vanilla_gan_covers_the_ring(compose):
    cfg = compose(
        [
            "experiment=toy_ring",
            "seed=0",
            "trainer=cpu",
            "logger=none",
            "callbacks=none",
            "trainer.enable_model_summary=false",
            "++trainer.enable_progress_bar=false",
        ]
    )
    _, objects = train(cfg)
    module, dm = objects["model"], objects["datamodule"]
    assert module.g_steps == 4000
    samples = module.sample(2500, generator=torch.Generator().manual_seed(123))
    cov = mode_coverage(samples, dm.modes, dm.std)
    assert cov.num_modes == 8
    assert cov.modes >= 7, cov
    # PacGAN's GAN reaches far more high-quality samples after long training; in this
    # budget the vanilla GAN reached 44-77 % over the seeds and settings tried, short of
    # the 80 % the project aims for (see the closing note of issue 2)
    assert cov.hq_fraction >= 0.4, cov
    assert cov.kl < 0.1, cov
