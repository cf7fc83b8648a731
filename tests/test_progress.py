"""The progress bar's epoch label under step and epoch budgets."""

from __future__ import annotations

import pytest
from gan_parts import fit, make_data, make_gan

from ganforge.callbacks.progress import ProgressBar


class RecordingBar(ProgressBar):
    def __init__(self) -> None:
        super().__init__()
        self.labels: list[str] = []

    def _get_train_description(self, current_epoch: int) -> str:
        self.labels.append(super()._get_train_description(current_epoch).strip())
        return self.labels[-1]


@pytest.mark.parametrize(
    ("budget", "expected"),
    [
        ({"max_epochs": -1, "max_steps": 15}, ["Epoch 0", "Epoch 1"]),
        ({"max_epochs": 2}, ["Epoch 0/1", "Epoch 1/1"]),
    ],
)
def test_epoch_label(budget, expected):
    bar = RecordingBar()
    fit(make_gan(), make_data(), callbacks=[bar], enable_progress_bar=True, **budget)  # 10 steps an epoch
    assert bar.labels and sorted(set(bar.labels)) == expected


def test_the_bar_shows_the_losses_the_module_logged():
    from gan_parts import MemoryLogger

    bar = ProgressBar()
    logger = MemoryLogger()
    fit(
        make_gan(), make_data(), callbacks=[bar], enable_progress_bar=True, logger=logger, log_every_n_steps=5
    )
    shown = bar.get_metrics(bar.trainer, bar.trainer.lightning_module)
    (last_d_loss,) = logger.values_of("train/d_loss")[-1:]
    assert shown["d_loss"] == f"{last_d_loss:.3g}" and "g_loss" in shown
