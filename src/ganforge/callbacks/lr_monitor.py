"""Lightning's learning-rate monitor, naming a GAN's two optimizers by their network."""

from __future__ import annotations

from lightning.pytorch.callbacks import LearningRateMonitor as _LightningMonitor

ROLES = ("generator", "discriminator")  # the order of GAN.configure_optimizers


class LearningRateMonitor(_LightningMonitor):
    """Logs ``lr-generator`` and ``lr-discriminator`` with or without schedulers.

    Lightning names an optimizer that has no scheduler after its class (``lr-Adam``,
    ``lr-Adam-1``), and a scheduled one by the scheduler's ``name`` (ganforge sets
    ``lr-generator`` / ``lr-discriminator``): one sweep would then log the same thing
    under two keys, and a dashboard could not compare its runs.
    """

    def _find_names_from_optimizers(self, optimizers, seen_optimizers, seen_optimizer_types):
        names, unscheduled = super()._find_names_from_optimizers(
            optimizers, seen_optimizers, seen_optimizer_types
        )
        if len(optimizers) != len(ROLES):
            return names, unscheduled
        plain = [getattr(o, "optimizer", o) for o in optimizers]  # as the parent unwraps them
        renamed = []
        for opt, opt_names in zip(unscheduled, names):
            default = opt_names[0].split("/")[0]  # lr-Adam or lr-Adam-1, before any /pgN
            role = f"lr-{ROLES[plain.index(opt)]}"
            renamed.append([role + name[len(default) :] for name in opt_names])
        return renamed, unscheduled
