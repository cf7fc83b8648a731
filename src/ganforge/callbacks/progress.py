"""Lightning's rich progress bar, reading right when the budget is in steps."""

from __future__ import annotations

from lightning.pytorch.callbacks import RichProgressBar


class ProgressBar(RichProgressBar):
    """Shows "Epoch 3" where Lightning's bar shows "Epoch 3/-2": GAN budgets are usually
    generator steps (``trainer.max_steps``), which leaves ``max_epochs`` at -1."""

    def _get_train_description(self, current_epoch: int) -> str:
        max_epochs = self.trainer.max_epochs
        text = f"Epoch {current_epoch}" + (f"/{max_epochs - 1}" if max_epochs and max_epochs > 0 else "")
        # as wide as the validation bar's label, so the bars do not jump
        return f"{text:{len(self.validation_description)}}"
