"""Learning rates are logged under the network's name, scheduled or not."""

from __future__ import annotations

import functools

import pytest
import torch
from lightning.pytorch.loggers import CSVLogger
from test_module import fit, make_data, make_gan

from ganforge.callbacks.lr_monitor import LearningRateMonitor


@pytest.mark.parametrize("scheduled", [(), ("g",), ("g", "d")])
def test_lr_keys_name_the_networks(tmp_path, scheduled):
    halve = functools.partial(torch.optim.lr_scheduler.StepLR, step_size=1, gamma=0.5)
    gan = make_gan(
        g_optimizer=functools.partial(torch.optim.Adam, lr=1e-3),
        d_optimizer=functools.partial(torch.optim.Adam, lr=4e-3),  # two time scales
        g_scheduler=halve if "g" in scheduled else None,
        d_scheduler=halve if "d" in scheduled else None,
    )
    monitor = LearningRateMonitor(logging_interval="step")
    fit(gan, make_data(), callbacks=[monitor], logger=CSVLogger(tmp_path), log_every_n_steps=1, max_steps=3)
    assert set(monitor.lrs) == {"lr-generator", "lr-discriminator"}
    # first logged values: each optimizer's own rate, before any scheduler step
    assert monitor.lrs["lr-generator"][0] == pytest.approx(1e-3)
    assert monitor.lrs["lr-discriminator"][0] == pytest.approx(4e-3)
