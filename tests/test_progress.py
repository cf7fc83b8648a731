"""The progress bar's epoch label under step and epoch budgets."""

from __future__ import annotations

import pytest
from test_module import fit, make_data, make_gan

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
