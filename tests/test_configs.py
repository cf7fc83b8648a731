"""Every config combination composes and instantiates; bad values fail early and clearly.

Every model x loss x data combination is composed with Hydra and built with
``ganforge.pipeline.build`` (datamodule, GAN, callbacks, trainer). The trainer
option rotates over the rows so that each trainer option meets every model, loss
and data option at least once among the combinations that build: trainer configs
interpolate only ``paths``, so the full 4-way product (120 compositions at ~0.25 s)
would add time, not coverage. ``trainer=gpu`` is composed and checked but its
Trainer is not instantiated (that needs a GPU); everything else in those rows is.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml
from hydra.errors import MissingConfigException
from hydra.utils import get_object, instantiate
from lightning.pytorch.accelerators import CPUAccelerator
from torch import nn

from ganforge.data.base import GANDataModule
from ganforge.losses import (
    HingeLoss,
    LeastSquaresLoss,
    RelativisticAverageLoss,
    RelativisticPairingLoss,
    VanillaLoss,
    WassersteinLoss,
)
from ganforge.modules.gan import GAN
from ganforge.nets import dcgan, mlp
from ganforge.pipeline import ConfigError, build, build_module, check_config
from ganforge.regularizers import GradientPenalty, R1Penalty, R2Penalty

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"

MODELS = ["dcgan", "mlp"]
LOSSES = ["vanilla", "hinge", "wgan_gp", "lsgan", "relativistic", "rpgan"]
DATA = ["digits", "ring", "grid"]
TRAINERS = ["default", "cpu", "gpu", "debug"]

OBJECTIVES = {
    "vanilla": VanillaLoss,
    "hinge": HingeLoss,
    "wgan_gp": WassersteinLoss,
    "lsgan": LeastSquaresLoss,
    "relativistic": RelativisticAverageLoss,
    "rpgan": RelativisticPairingLoss,
}
NETS = {"dcgan": dcgan, "mlp": mlp}
DATA_SHAPES = {"digits": (1, 32, 32), "ring": (2,), "grid": (2,)}
TRAINER_EPOCHS = {"default": 40, "cpu": 40, "gpu": 40, "debug": 1}


def _rows():
    for (i, model), (j, loss), (k, data) in itertools.product(
        enumerate(MODELS), enumerate(LOSSES), enumerate(DATA)
    ):
        yield model, loss, data, TRAINERS[(i + j + k) % len(TRAINERS)]


ROWS = list(_rows())
VALID_ROWS = [r for r in ROWS if not (r[0] == "dcgan" and r[2] != "digits")]
INVALID_ROWS = [r for r in ROWS if r not in VALID_ROWS]


def _row_id(row):
    return "-".join(row)


def test_rotation_pairs_every_trainer_with_every_option():
    # the claim of the module docstring, checked on the rows that build
    for column, options in ((0, MODELS), (1, LOSSES), (2, DATA)):
        pairs = {(row[column], row[3]) for row in VALID_ROWS}
        assert pairs == set(itertools.product(options, TRAINERS))
    assert len(ROWS) == len(MODELS) * len(LOSSES) * len(DATA)


@pytest.mark.parametrize("row", VALID_ROWS, ids=_row_id)
def test_combination_composes_and_builds(row, compose, tmp_path):
    model_name, loss_name, data_name, trainer_name = row
    cfg = compose(
        [
            f"model={model_name}",
            f"loss={loss_name}",
            f"data={data_name}",
            f"trainer={trainer_name}",
            "logger=none",
            "~recipe",  # the loss configs as they are; recipes are checked below
        ]
    )
    assert cfg.trainer.max_epochs == TRAINER_EPOCHS[trainer_name]

    if trainer_name == "gpu":
        # no Trainer without a GPU: check the composed trainer, build the rest
        assert cfg.trainer.accelerator == "gpu"
        assert cfg.trainer.devices == 1
        check_config(cfg)
        datamodule, module = instantiate(cfg.data), build_module(cfg)
    else:
        objects = build(cfg)
        assert set(objects) >= {"datamodule", "model", "callbacks", "trainer"}
        datamodule, module, trainer = objects["datamodule"], objects["model"], objects["trainer"]
        assert isinstance(trainer, L.Trainer)
        assert all(isinstance(c, L.Callback) for c in objects["callbacks"])
        assert trainer.max_epochs == TRAINER_EPOCHS[trainer_name]
        assert Path(trainer.default_root_dir) == tmp_path / "run"
        assert not trainer.loggers
        if trainer_name in ("cpu", "debug"):
            assert isinstance(trainer.accelerator, CPUAccelerator)

    assert isinstance(datamodule, GANDataModule)
    assert tuple(datamodule.data_shape) == DATA_SHAPES[data_name]

    assert isinstance(module, GAN)
    net = NETS[model_name]
    assert isinstance(module.generator, net.Generator)
    assert isinstance(module.discriminator, net.Discriminator)
    assert isinstance(module.loss, OBJECTIVES[loss_name])
    betas = list(module.configure_optimizers()[0][0].param_groups[0]["betas"])  # the generator's
    if loss_name == "wgan_gp":
        assert module.n_critic == 5
        assert isinstance(module.regularizers["gp"], GradientPenalty)
        assert module.regularizers["gp"].weight == 10.0
        assert betas == [0.0, 0.9]
    elif loss_name == "rpgan":
        # R3GAN's pairing: R1 and R2 of one weight, Adam beta1 0
        assert module.n_critic == 1
        assert {k: type(r) for k, r in module.regularizers.items()} == {"r1": R1Penalty, "r2": R2Penalty}
        assert module.regularizers["r1"].weight == module.regularizers["r2"].weight
        assert betas == [0.0, 0.9]
    else:
        assert module.n_critic == 1
        assert module.regularizers == {}
        assert betas == [0.5, 0.999]
    if model_name == "dcgan":
        # ${loss.d_norm}: gradient penalties (GP; R1 and R2 of rpgan) ask for a per-sample (layer) norm
        has_group_norm = any(isinstance(m, nn.GroupNorm) for m in module.discriminator.modules())
        assert has_group_norm == (loss_name in ("wgan_gp", "rpgan"))

    # the nets fit the data the config declared: G's samples have D's input shape
    x = module.sample(2)
    assert tuple(x.shape) == (2, *DATA_SHAPES[data_name])
    assert module.discriminator(x).shape == (2,)


def _messages(exc: BaseException) -> str:
    """The text of an exception and everything it was raised from."""
    seen, out = set(), []
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        out.append(str(exc))
        exc = exc.__cause__ or exc.__context__
    return "\n".join(out)


@pytest.mark.parametrize("row", INVALID_ROWS, ids=_row_id)
def test_dcgan_on_points_points_to_the_mlp(row, compose):
    model_name, loss_name, data_name, trainer_name = row
    cfg = compose(
        [f"model={model_name}", f"loss={loss_name}", f"data={data_name}", f"trainer={trainer_name}"]
    )
    with pytest.raises(Exception) as info:
        build(cfg)
    assert "model=mlp" in _messages(info.value)


def test_gpu_trainer_asks_for_a_gpu(compose):
    cfg = compose(["trainer=gpu"])
    assert cfg.trainer.accelerator == "gpu"
    assert cfg.trainer._target_ == "lightning.pytorch.trainer.Trainer"
    if torch.cuda.is_available():  # where there is one, it builds
        assert build(cfg)["trainer"].num_devices == 1


def test_default_config_builds(cfg_train, tmp_path):
    objects = build(cfg_train)
    assert isinstance(objects["model"].generator, dcgan.Generator)
    assert isinstance(objects["model"].loss, VanillaLoss)
    # the default callbacks and the CSV logger, all writing under tmp_path
    names = {type(c).__name__ for c in objects["callbacks"]}
    assert {"ModelCheckpoint", "SampleGrid", "ModeCoverage"} <= names
    (csv,) = objects["trainer"].loggers
    assert Path(csv.save_dir).is_relative_to(tmp_path)


# ----------------------------------------------------------------------------- bad input
def test_unknown_option_lists_the_available_ones(compose):
    with pytest.raises(MissingConfigException) as info:
        compose(["model=nonexistent"])
    text = str(info.value)
    assert "model/nonexistent" in text
    assert "dcgan" in text and "mlp" in text


def test_missing_checkpoint_is_named(compose):
    cfg = compose(["ckpt_path=/does/not/exist.ckpt"])
    with pytest.raises(ConfigError, match=r"ckpt_path=/does/not/exist.ckpt does not exist"):
        build(cfg)


@pytest.mark.parametrize("name", ["g_optimizer", "d_optimizer"])
def test_zero_learning_rate_is_refused(name, compose):
    cfg = compose([f"model.{name}.lr=0"])
    with pytest.raises(ConfigError, match=rf"model.{name}.lr must be positive, got 0"):
        build(cfg)


def test_zero_batch_size_is_refused(compose):
    cfg = compose(["data.batch_size=0"])
    with pytest.raises(ConfigError, match=r"data.batch_size must be a positive integer, got 0"):
        build(cfg)


def test_zero_critic_steps_are_refused(compose):
    cfg = compose(["loss.n_critic=0"])
    with pytest.raises(ConfigError, match=r"loss.n_critic must be >= 1, got 0"):
        build(cfg)


# ----------------------------------------------------------------------------- targets
def _walk_targets(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "_target_":
                yield value
            else:
                yield from _walk_targets(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk_targets(value)


def _all_targets():
    found = {}
    for path in sorted(CONF_DIR.rglob("*.yaml")):
        for target in _walk_targets(yaml.safe_load(path.read_text()) or {}):
            found.setdefault(target, str(path.relative_to(CONF_DIR)))
    return found


TARGETS = _all_targets()


def test_targets_were_found():
    # the walk itself works: the core parts are among the targets
    assert {
        "ganforge.modules.gan.GAN",
        "ganforge.nets.dcgan.Generator",
        "ganforge.losses.HingeLoss",
        "ganforge.regularizers.GradientPenalty",
        "ganforge.data.digits.DigitsDataModule",
        "lightning.pytorch.trainer.Trainer",
    } <= set(TARGETS)


@pytest.mark.parametrize(("target", "where"), sorted(TARGETS.items()), ids=sorted(TARGETS))
def test_every_target_resolves(target, where):
    obj = get_object(target)
    assert callable(obj), f"{where}: _target_ {target} is not callable"


def test_model_class_count_must_match_the_data(compose):
    cfg = compose(["model=cdcgan", "model.generator.num_classes=5"])
    with pytest.raises(ConfigError, match=r"num_classes=5 .* num_classes=10"):
        check_config(cfg)


EXPERIMENTS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_composes_and_builds_its_model_and_data(name, compose):
    cfg = compose([f"experiment={name}"])
    check_config(cfg)
    module = build_module(cfg)
    datamodule = instantiate(cfg.data)
    x = module.sample(2)
    assert tuple(x.shape) == (2, *datamodule.data_shape)


# the strong image GANs: each with the loss it is meant for, at narrow widths, on digits
STRONG_MODELS = {
    "resnet": ("hinge", "ganforge.nets.resnet", ["model.generator.width=8", "model.discriminator.width=8"]),
    "biggan": ("hinge", "ganforge.nets.biggan", ["model.generator.width=8", "model.discriminator.width=8"]),
    # r3gan's D takes its widths from G's keys; the groups must divide the narrow width
    "r3gan": ("rpgan", "ganforge.nets.r3gan", ["model.generator.width=8", "model.generator.cardinality=2"]),
}


@pytest.mark.parametrize("model_name", sorted(STRONG_MODELS))
def test_strong_models_build_and_sample_on_digits(model_name, compose):
    loss_name, net_module, narrow = STRONG_MODELS[model_name]
    cfg = compose([f"model={model_name}", f"loss={loss_name}", *narrow])
    module = build(cfg)["model"]
    assert type(module.generator).__module__ == net_module
    x = module.sample(3)
    assert tuple(x.shape) == (3, 1, 32, 32)
    labels = torch.arange(3) if getattr(module.discriminator, "num_classes", 0) else None
    assert module.discriminator(x, labels).shape == (3,)


@pytest.mark.parametrize("model_name", sorted(STRONG_MODELS))
def test_strong_models_on_points_point_to_the_mlp(model_name, compose):
    cfg = compose([f"model={model_name}", "data=ring"])
    with pytest.raises(Exception) as info:
        build(cfg)
    assert "model=mlp" in _messages(info.value)


RECIPES = sorted(p.stem for p in (CONF_DIR / "recipe").glob("*.yaml"))


@pytest.mark.parametrize("name", RECIPES)
def test_a_recipe_applies_to_its_model_data_and_loss(name, compose):
    model_name, data_name, loss_name = name.split("_", 2)
    triple = [f"model={model_name}", f"data={data_name}", f"loss={loss_name}"]
    cfg = compose(triple)
    assert cfg.hydra.runtime.choices.recipe == name
    recipe = yaml.safe_load((CONF_DIR / "recipe" / f"{name}.yaml").read_text())
    for key in ("g_optimizer", "d_optimizer"):  # what the recipe sets is what the run gets
        if key in recipe.get("model", {}):
            assert cfg.model[key].lr == recipe["model"][key]["lr"]
    for reg, values in recipe.get("loss", {}).get("regularizers", {}).items():
        assert {k: cfg.loss.regularizers[reg][k] for k in values} == values
    if "betas" in recipe.get("loss", {}):  # the recipe's betas reach both optimizers
        assert (
            list(cfg.model.g_optimizer.betas) == list(cfg.model.d_optimizer.betas) == recipe["loss"]["betas"]
        )
    build(cfg)
    # ~recipe: the loss config alone
    bare = compose([*triple, "~recipe"])
    assert "recipe" not in bare.hydra.runtime.choices or bare.hydra.runtime.choices.recipe is None


def test_toy_experiment_and_recipe_compose_in_order(compose):
    # the experiment sets the budget and decay, the recipe the loss's own settings after it
    cfg = compose(["experiment=toy_ring", "loss=wgan_gp"])
    assert cfg.trainer.max_steps == 10000 and cfg.loss.n_critic == 5
    module = build(cfg)["model"]
    assert module.regularizers["gp"].weight == 0.1  # Gulrajani et al.'s toy weight, not 10
    assert "r1" not in module.regularizers
    scheduler = instantiate(cfg.model.d_scheduler)(optimizer=torch.optim.SGD([nn.Parameter(torch.zeros(1))]))
    assert scheduler.total_iters == 50000  # D steps: 5 per generator step
