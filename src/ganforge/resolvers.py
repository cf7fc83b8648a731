"""OmegaConf resolvers the configs use, registered when the pipeline is imported.

``${mul:a,b}``: a product, for budgets that one config states in another's units (a
discriminator's scheduler counts D steps: ``${mul:${trainer.max_steps},${loss.n_critic}}``).
"""

from __future__ import annotations

from omegaconf import OmegaConf


def _mul(*factors):
    product = 1
    for f in factors:
        product *= f
    return product


def register() -> None:
    if not OmegaConf.has_resolver("mul"):
        OmegaConf.register_new_resolver("mul", _mul)


register()
