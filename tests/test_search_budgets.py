"""Every hyperparameter search gives each of its losses the same number of generator steps.

A loss with ``n_critic`` > 1 takes that many discriminator steps per generator step, so an
epoch budget gives it fewer generator steps than the others and the search would compare
unequal budgets. Each trial's config is composed as the sweeper composes it (the search,
then the trial's ``loss=...``) and its generator-step budget worked out from the trainer's
limits, the data and ``loss.n_critic``.
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig

SEARCHES = sorted(
    p.stem for p in (Path(__file__).resolve().parents[1] / "conf" / "hparams_search").glob("*.yaml")
)

STATE_IT = (
    "the search must state its budget in trainer.max_steps (generator steps, with "
    "trainer.max_epochs=-1) when the budget depends on loss.n_critic"
)


class BudgetUnknown(Exception):
    """The config alone does not say how many generator steps a run takes."""


def d_steps_per_epoch(cfg: DictConfig) -> int | None:
    """Discriminator steps in one epoch where the config alone says: the 2-D toys."""
    if "samples_per_epoch" not in cfg.data:
        return None  # image data: the dataset's size / batch size, not in the config
    loader_batch = cfg.data.batch_size * cfg.data.get("steps_per_batch", 1)
    batches = cfg.data.samples_per_epoch // loader_batch
    limit = cfg.trainer.get("limit_train_batches")
    if limit is not None:
        batches = min(batches, limit) if isinstance(limit, int) else int(batches * limit)
    return batches * cfg.data.get("steps_per_batch", 1)


def generator_budget(cfg: DictConfig) -> int | tuple[str, Fraction]:
    """The generator steps a run of ``cfg`` takes: the first of its limits to be reached.

    In ganforge ``trainer.max_steps`` counts generator steps; an epoch of the data is
    ``d_steps_per_epoch`` discriminator steps, ``n_critic`` of them per generator step;
    ``model.max_kimg`` stops after that many thousand real images. For image data the
    epoch's length is not in the config: a budget of epochs alone is returned as
    ``("epochs / n_critic", max_epochs / n_critic)``, which is equal between two
    configs exactly when their generator steps are.
    """
    n_critic = cfg.loss.n_critic
    limits = []
    max_steps = cfg.trainer.max_steps
    if max_steps is not None and max_steps > 0:
        limits.append(max_steps)
    max_kimg = cfg.model.get("max_kimg")
    if max_kimg is not None:
        d_steps = math.ceil(max_kimg * 1000 / (cfg.model.get("minibatch_size") or cfg.data.batch_size))
        limits.append(d_steps // n_critic)
    max_epochs = cfg.trainer.max_epochs
    if max_epochs is None and not limits:
        max_epochs = 1000  # Lightning's default when no other limit is set
    if max_epochs is not None and max_epochs >= 0:  # -1: no epoch limit
        per_epoch = d_steps_per_epoch(cfg)
        if per_epoch is not None:
            limits.append(max_epochs * per_epoch // n_critic)
        elif not limits:
            return ("epochs / n_critic", Fraction(max_epochs, n_critic))
        else:
            raise BudgetUnknown(f"{STATE_IT}: which of its limits stops it depends on the dataset's size")
    if not limits:
        raise BudgetUnknown("no limit stops the run")
    return min(limits)


def loss_choices(cfg: DictConfig) -> list[str]:
    """The losses a search tries: the values of ``hydra.sweeper.params.loss`` ('choice(a, b, c)')."""
    spec = cfg.hydra.sweeper.get("params", {}).get("loss")
    if spec is None:
        return []
    (override,) = OverridesParser.create().parse_overrides([f"loss={spec}"])
    return list(override.sweep_string_iterator()) if override.is_sweep_override() else [override.value()]


@pytest.mark.parametrize("search", SEARCHES)
def test_every_loss_of_a_search_gets_the_same_generator_steps(search, compose, tmp_path):
    # trainer=default: the trainer a search runs with (the test configs' trainer=debug is a CPU smoke run)
    base = [f"hparams_search={search}", "trainer=default"]
    # a search of one loss's recipe (toy_recipe) takes the loss from the command line
    choices = loss_choices(compose(base)) or ["vanilla"]
    budgets, n_critic = {}, {}
    for loss in choices:
        cfg = compose([*base, f"loss={loss}"], tmp_path / loss)
        n_critic[loss] = cfg.loss.n_critic
        try:
            budgets[loss] = generator_budget(cfg)
        except BudgetUnknown as err:
            pytest.fail(f"hparams_search={search} loss={loss}: {err}")
    print(f"{search}: generator steps per loss {budgets} (n_critic {n_critic})")
    assert len(set(budgets.values())) == 1, (
        f"hparams_search={search} compares unequal budgets: generator steps {budgets} "
        f"(n_critic {n_critic}); {STATE_IT}"
    )
