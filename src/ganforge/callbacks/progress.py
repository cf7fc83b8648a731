"""Lightning's rich progress bar, reading right when the budget is in steps."""

from __future__ import annotations

from collections.abc import Sequence

from lightning.pytorch.callbacks import RichProgressBar


class ProgressBar(RichProgressBar):
    """Shows "Epoch 3" where Lightning's bar shows "Epoch 3/-2": GAN budgets are usually
    generator steps (``trainer.max_steps``), which leaves ``max_epochs`` at -1.

    ``metrics``: keys of ``trainer.callback_metrics`` to show, by their last name
    (``train/d_loss`` as ``d_loss``). The module logs its statistics to the loggers and to
    ``callback_metrics`` at the step axis (``ganforge.modules.logs``), not through
    ``self.log``, whose bookkeeping costs 0.56 ms a value (benchmarks/step_parts.py); the bar
    reads them from there.
    """

    def __init__(self, *args, metrics: Sequence[str] = ("train/d_loss", "train/g_loss"), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.shown = tuple(metrics)

    def get_metrics(self, trainer, pl_module) -> dict:
        items = super().get_metrics(trainer, pl_module)
        for key in self.shown:
            value = trainer.callback_metrics.get(key)
            if value is not None:
                items[key.rsplit("/", 1)[-1]] = f"{float(value):.3g}"
        return items

    def _get_train_description(self, current_epoch: int) -> str:
        max_epochs = self.trainer.max_epochs
        text = f"Epoch {current_epoch}" + (f"/{max_epochs - 1}" if max_epochs and max_epochs > 0 else "")
        # as wide as the validation bar's label, so the bars do not jump
        return f"{text:{len(self.validation_description)}}"
