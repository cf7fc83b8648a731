"""Augmentations of what the discriminator sees: DiffAugment and ADA (``model.augment``).

``build(name, options)`` gives the module the GAN applies to every image D is shown
(real and generated, in D's step, G's step and the penalties); ``none`` gives None.
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import nn

from ganforge.augment.ada import AdaptiveAugment
from ganforge.augment.diffaugment import DiffAugment

CHOICES = {"diffaugment": DiffAugment, "ada": AdaptiveAugment}


def build(name: str | nn.Module | None, options: Mapping | None = None) -> nn.Module | None:
    """The augmentation called ``name`` (none, diffaugment, ada) with ``options``, or a given module."""
    if name is None or isinstance(name, nn.Module):
        return name
    key = str(name).lower()
    if key in ("none", "null", ""):
        if options:
            raise ValueError(f"model.augment=none takes no options, got {dict(options)}")
        return None
    if key not in CHOICES:
        raise ValueError(f"model.augment={name!r}: pick one of none, {', '.join(CHOICES)}")
    try:
        return CHOICES[key](**dict(options or {}))
    except TypeError as err:
        raise ValueError(f"model.augment_options for {key}: {err}") from None


__all__ = ["CHOICES", "AdaptiveAugment", "DiffAugment", "build"]
