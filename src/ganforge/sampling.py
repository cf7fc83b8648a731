"""Pictures from a trained GAN: sample grids, latent walks, class rows, truncation.

Everything is drawn from the EMA generator (``GAN.sample``) with a seeded CPU
``torch.Generator``, so the same options give the same pictures on any device.

Truncation trick (as in StyleGAN, Karras et al. 2019): each latent is pulled
towards the mean latent, z' = mean + psi * (z - mean), psi in (0, 1], trading
variety for typical-looking samples. The mean is measured on many draws from the
module's own latent sampler rather than assumed, so a GAN whose latent is not a
centred Gaussian is truncated towards its own centre; for N(0, I) it comes out
within about 1/sqrt(draws) of zero in every coordinate.

Latent walks use spherical interpolation (White 2016, "Sampling Generative
Networks"): a Gaussian latent of high dimension lives near a sphere of radius
sqrt(d), and the straight line between two draws passes well inside it, where the
generator saw no training latents. ``method=lerp`` gives the straight line.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from ganforge.modules.gan import GAN
from ganforge.pipeline import ConfigError

MEAN_LATENT_SEED = 0  # a fixed draw: the truncation centre must not change with ``seed``


def check_truncation(psi: float | None) -> float:
    psi = 1.0 if psi is None else float(psi)
    if not 0.0 < psi <= 1.0:
        raise ConfigError(f"truncation must be in (0, 1] (1: no truncation), got {psi}")
    return psi


def check_labels(module: GAN, labels: int | Sequence[int] | Tensor | None) -> Tensor | None:
    """Labels as a long tensor, after checking that the model takes them and they exist."""
    classes = module.num_classes
    if labels is None:
        return None
    flat = torch.as_tensor(labels).reshape(-1)
    if not classes:
        raise ConfigError(
            f"labels={flat.tolist()} given, but this model is unconditional (its generator takes no labels)"
        )
    if flat.is_floating_point() or flat.numel() == 0:
        raise ConfigError(f"labels must be class indices 0..{classes - 1}, got {flat.tolist()}")
    bad = [int(v) for v in flat if not 0 <= int(v) < classes]
    if bad:
        raise ConfigError(f"labels {bad} out of range: this model has {classes} classes (0..{classes - 1})")
    return flat.long()


def mean_latent(module: GAN, draws: int = 10_000) -> Tensor:
    """The mean of ``draws`` latents from the module's own sampler (a fixed seed)."""
    g = torch.Generator().manual_seed(MEAN_LATENT_SEED)
    return module.sample_latent(draws, generator=g).mean(0)


def draw_latents(module: GAN, n: int, generator: torch.Generator, psi: float, mean: Tensor | None) -> Tensor:
    z = module.sample_latent(n, generator=generator)
    if psi < 1.0:
        z = mean.to(z.device) + psi * (z - mean.to(z.device))
    return z


def grid_labels(module: GAN, labels, num_samples: int, nrow: int) -> Tensor | None:
    """Conditional layout: an int fills the grid with that class, a list gives one row of
    ``nrow`` samples per entry, None one row per class."""
    classes = module.num_classes
    if not classes:
        check_labels(module, labels)  # raises when labels were given
        return None
    if labels is None:
        return torch.arange(classes).repeat_interleave(nrow)
    if isinstance(labels, int) and not isinstance(labels, bool):
        return check_labels(module, [labels]).repeat(num_samples)
    return check_labels(module, list(labels)).repeat_interleave(nrow)


@torch.no_grad()
def sample_grid(
    module: GAN,
    num_samples: int = 64,
    nrow: int = 8,
    seed: int = 0,
    truncation: float = 1.0,
    labels=None,
    truncation_draws: int = 10_000,
) -> tuple[Tensor, Tensor | None]:
    """Images in [-1, 1] and the labels they were drawn for (None when unconditional)."""
    if int(num_samples) < 1 or int(nrow) < 1:
        raise ConfigError(f"num_samples and nrow must be >= 1, got {num_samples} and {nrow}")
    psi = check_truncation(truncation)
    y = grid_labels(module, labels, int(num_samples), int(nrow))
    n = len(y) if y is not None else int(num_samples)
    mean = mean_latent(module, truncation_draws) if psi < 1.0 else None
    z = draw_latents(module, n, torch.Generator().manual_seed(int(seed)), psi, mean)
    return module.sample(n, labels=y, z=z).float().cpu(), y


def slerp(a: Tensor, b: Tensor, t: Tensor) -> Tensor:
    """Spherical interpolation between rows of ``a`` and ``b`` at fractions ``t`` -> (rows, steps, d)."""
    an, bn = a / a.norm(dim=1, keepdim=True), b / b.norm(dim=1, keepdim=True)
    omega = torch.acos((an * bn).sum(1).clamp(-1.0, 1.0))[:, None]  # (rows, 1)
    so = torch.sin(omega)
    t = t[None, :]
    # near-parallel endpoints: the spherical weights tend to the linear ones
    near = so.abs() < 1e-6
    wa = torch.where(near, 1 - t, torch.sin((1 - t) * omega) / torch.where(near, 1.0, so))
    wb = torch.where(near, t, torch.sin(t * omega) / torch.where(near, 1.0, so))
    return wa[..., None] * a[:, None] + wb[..., None] * b[:, None]


def lerp(a: Tensor, b: Tensor, t: Tensor) -> Tensor:
    t = t[None, :, None]
    return (1 - t) * a[:, None] + t * b[:, None]


INTERPOLATIONS = {"slerp": slerp, "lerp": lerp}


@torch.no_grad()
def interpolate(
    module: GAN,
    num_walks: int = 8,
    steps: int = 10,
    seed: int = 0,
    method: str = "slerp",
    truncation: float = 1.0,
    labels=None,
    truncation_draws: int = 10_000,
) -> Tensor:
    """Images of shape (num_walks, steps, C, H, W): each row walks between two random latents.

    Conditional models keep one class along a walk: ``labels`` (a list, one per walk,
    or one int for all) or, by default, classes 0, 1, 2, ... in turn.
    """
    if method not in INTERPOLATIONS:
        raise ConfigError(f"interpolation method must be one of {sorted(INTERPOLATIONS)}, got {method!r}")
    if int(num_walks) < 1 or int(steps) < 2:
        raise ConfigError(f"num_walks must be >= 1 and steps >= 2, got {num_walks} and {steps}")
    num_walks, steps = int(num_walks), int(steps)
    psi = check_truncation(truncation)
    classes = module.num_classes
    y = check_labels(module, labels)
    if classes:
        if y is None:
            y = torch.arange(num_walks) % classes
        elif len(y) == 1:
            y = y.repeat(num_walks)
        elif len(y) != num_walks:
            raise ConfigError(f"give one label per walk ({num_walks}) or a single label, got {len(y)}")
    mean = mean_latent(module, truncation_draws) if psi < 1.0 else None
    g = torch.Generator().manual_seed(int(seed))
    ends = draw_latents(module, 2 * num_walks, g, psi, mean).cpu()
    t = torch.linspace(0, 1, steps)
    z = INTERPOLATIONS[method](ends[:num_walks], ends[num_walks:], t).reshape(num_walks * steps, -1)
    y_all = y.repeat_interleave(steps) if y is not None else None
    images = module.sample(len(z), labels=y_all, z=z).float().cpu()
    return images.view(num_walks, steps, *images.shape[1:])


def gif_frames(walks: Tensor) -> list[Tensor]:
    """One uint8 grid per step (all walks side by side), there and back so the GIF loops smoothly."""
    from ganforge.callbacks.images import image_grid

    num_walks, steps = walks.shape[:2]
    nrow = math.ceil(math.sqrt(num_walks))
    frames = [image_grid(walks[:, s], nrow=nrow) for s in range(steps)]
    return frames + frames[-2:0:-1]


def _points_scatter(module: GAN, train_cfg, n: int, seed: int, psi: float, draws: int, path):
    """2-D toys: a scatter of samples over the data's modes instead of an image grid."""
    from hydra.utils import instantiate

    from ganforge.callbacks.scatter import scatter_plot
    from ganforge.metrics.coverage import mode_coverage

    dm = instantiate(train_cfg.data)
    mean = mean_latent(module, draws) if psi < 1.0 else None
    with torch.no_grad():
        z = draw_latents(module, n, torch.Generator().manual_seed(seed), psi, mean)
        points = module.sample(n, z=z).float().cpu()
    cov = mode_coverage(points, dm.modes, dm.std)
    title = f"{n} samples: {cov.modes}/{cov.num_modes} modes, {100 * cov.hq_fraction:.1f}% high quality"
    return scatter_plot(points, dm.modes, dm.std, path, title=title)


def write_samples(cfg) -> list[Path]:
    """What ``python src/sample.py`` does: load the checkpoint, draw, write; returns the files."""
    from ganforge.callbacks.images import image_grid, save_png, to_uint8
    from ganforge.checkpoint import beside, load_checkpoint, module_from_checkpoint, pick_device
    from ganforge.writing import refuse_overwrite, save_gif

    mode = cfg.get("mode", "grid")
    if mode not in ("grid", "interpolate"):
        raise ConfigError(f"mode must be 'grid' or 'interpolate', got {mode!r}")
    psi = check_truncation(cfg.get("truncation"))
    path, ckpt, train_cfg = load_checkpoint(cfg.get("ckpt_path"))
    module = module_from_checkpoint(path, ckpt, train_cfg).to(pick_device(cfg.get("device")))
    seed, overwrite = int(cfg.seed), bool(cfg.get("overwrite", False))
    labels = cfg.get("labels")
    if labels is not None and not isinstance(labels, int):
        labels = list(labels)
    tag = f"_seed{seed}" + (f"_psi{psi:g}" if psi < 1.0 else "")
    out = Path(str(cfg.out)) if cfg.get("out") else None
    is_image = train_cfg.data.get("image_size") is not None
    draws = int(cfg.get("truncation_draws", 10_000))

    if mode == "interpolate":
        if not is_image:
            raise ConfigError("mode=interpolate draws image grids; this checkpoint generates 2-D points")
        png = out or beside(path, f"_interpolate{tag}.png")
        gif = png.with_suffix(".gif")
        refuse_overwrite([png, gif], overwrite)
        walks = interpolate(
            module, cfg.num_walks, cfg.steps, seed, cfg.method, psi, labels, truncation_draws=draws
        )
        save_png(image_grid(walks.flatten(0, 1), nrow=walks.shape[1]), png)
        return [png, save_gif(gif_frames(walks), gif, frame_ms=int(cfg.get("frame_ms", 100)))]

    if not is_image:
        check_labels(module, labels)
        png = out or beside(path, f"_scatter{tag}.png")
        refuse_overwrite([png], overwrite)
        return [_points_scatter(module, train_cfg, int(cfg.num_samples), seed, psi, draws, png)]

    images, y = sample_grid(module, cfg.num_samples, cfg.nrow, seed, psi, labels, truncation_draws=draws)
    if cfg.get("individual", False):
        folder = out or beside(path, f"_samples{tag}")
        names = [f"{i:05d}" + (f"_class{int(y[i])}" if y is not None else "") for i in range(len(images))]
        files = [folder / f"{name}.png" for name in names]
        refuse_overwrite(files, overwrite)
        return [save_png(to_uint8(x), f) for x, f in zip(images, files)]
    png = out or beside(path, f"_samples{tag}.png")
    refuse_overwrite([png], overwrite)
    return [save_png(image_grid(images, nrow=int(cfg.nrow)), png)]
