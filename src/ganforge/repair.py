"""Fill a hole in an image with what the generator can draw: semantic inpainting.

Yeh et al. 2017, "Semantic Image Inpainting with Deep Generative Models": search the
latent space for the code z whose image G(z) best matches the pixels that are known,

    loss(z) = || W * (G(z) - y) ||_1  +  lambda * prior(z),

where the contextual weights W count, for each known pixel, the share of hole pixels
in a window around it (eq. 2: the context next to the hole matters most, the far
background hardly), and the prior keeps G(z) realistic to the discriminator. The
paper writes the prior as log(1 - D(G(z))); we use -log D(G(z)), the
non-saturating form (Goodfellow et al. 2014) with the same optimum but a gradient
that does not vanish where D rejects the sample. Several random restarts are
optimised together and the lowest loss wins. G(z) then fills the hole by Poisson
blending (Pérez et al. 2003, as in the paper): inside the hole the result has the
gradients of G(z), at its border the values of the known pixels, so no seam shows.
Known pixels are never changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ganforge.modules.gan import GAN
from ganforge.pipeline import ConfigError


@dataclass
class Repair:
    """Tensors are (C, H, W) in [-1, 1]; ``hole`` is (H, W) bool, True where pixels were filled."""

    image: Tensor
    hole: Tensor
    fill: Tensor  # G(z) of the best restart, the whole generated image
    blend: Tensor  # the image with its hole filled
    loss: float  # the best restart's final loss
    history: list[float] = field(default_factory=list)  # its loss at every step
    label: int | None = None  # the class it was drawn from (conditional models)


def check_hole(hole: Tensor, image_hw: tuple[int, int]) -> Tensor:
    if tuple(hole.shape) != tuple(image_hw):
        raise ConfigError(
            f"the mask is {hole.shape[1]}x{hole.shape[0]} but the image is {image_hw[1]}x{image_hw[0]}; "
            "they must be the same size"
        )
    if not bool(hole.any()):
        raise ConfigError("the mask hides nothing: mark the pixels to fill in white")
    if bool(hole.all()):
        raise ConfigError("the mask hides the whole image: leave some known pixels to match")
    return hole.bool()


def box_hole(box, size: tuple[int, int]) -> Tensor:
    """A hole from ``x,y,w,h`` (pixels, origin top left), inside an image of ``size`` (H, W)."""
    if isinstance(box, str):
        box = [v for v in box.replace(" ", "").split(",") if v]
    try:
        x, y, w, h = (int(v) for v in box)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"box must be four integers x,y,w,h, got {box!r}") from err
    height, width = size
    if w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > width or y + h > height:
        raise ConfigError(f"box={x},{y},{w},{h} does not fit inside the {width}x{height} image")
    hole = torch.zeros(size, dtype=torch.bool)
    hole[y : y + h, x : x + w] = True
    return check_hole(hole, size)


def contextual_weights(known: Tensor, window: int | None = 7) -> Tensor:
    """Yeh et al. eq. 2: per known pixel, the fraction of hole pixels in a ``window`` square
    around it; 0 inside the hole. ``window`` None or 0: every known pixel weighs 1."""
    known = known.float()
    if not window:
        return known
    hole = (1.0 - known)[None, None]
    share = F.avg_pool2d(hole, window, stride=1, padding=window // 2, count_include_pad=False)
    return known * share[0, 0]


def poisson_blend(image: Tensor, fill: Tensor, hole: Tensor) -> Tensor:
    """``image`` with its hole replaced by the solution of Laplace(x) = Laplace(fill) inside
    the hole, x = image on the pixels around it (4-neighbour discrete Poisson equation)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.linalg import spsolve

    img, src = image.double().cpu().numpy(), fill.double().cpu().numpy()
    mask = hole.cpu().numpy()
    height, width = mask.shape
    ys, xs = np.nonzero(mask)
    n = len(ys)
    index = np.full(mask.shape, -1)
    index[ys, xs] = np.arange(n)
    diag = np.zeros(n)
    rhs = np.zeros((n, img.shape[0]))
    rows, cols = [], []
    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        qy, qx = ys + dy, xs + dx
        inside = (qy >= 0) & (qy < height) & (qx >= 0) & (qx < width)
        p, qy, qx = np.nonzero(inside)[0], qy[inside], qx[inside]
        diag[p] += 1  # image edges drop out: no flux across them
        rhs[p] += (src[:, ys[p], xs[p]] - src[:, qy, qx]).T
        in_hole = mask[qy, qx]
        rows.append(p[in_hole])
        cols.append(index[qy[in_hole], qx[in_hole]])
        rhs[p[~in_hole]] += img[:, qy[~in_hole], qx[~in_hole]].T
    rows = np.concatenate([np.arange(n), *rows])
    cols = np.concatenate([np.arange(n), *cols])
    vals = np.concatenate([diag, -np.ones(len(rows) - n)])
    a = coo_matrix((vals, (rows, cols)), shape=(n, n)).tocsc()
    solution = spsolve(a, rhs).reshape(n, -1)
    out = image.clone()
    out[:, hole] = torch.as_tensor(solution.T, dtype=image.dtype).to(image.device).clamp(-1, 1)
    return out


def paste(image: Tensor, fill: Tensor, hole: Tensor) -> Tensor:
    return torch.where(hole, fill, image)


BLENDS = {"poisson": poisson_blend, "paste": paste}


def repair(module: GAN, image: Tensor, hole: Tensor, **options) -> Repair:
    """Fill ``hole`` (H, W bool) of ``image`` (C, H, W in [-1, 1]) from ``module``'s generator.

    Options as for ``repair_batch``.
    """
    return repair_batch(module, image[None], hole[None], **options)[0]


def repair_batch(
    module: GAN,
    images: Tensor,
    holes: Tensor,
    restarts: int = 8,
    steps: int = 1000,
    lr: float = 0.01,
    prior_weight: float = 0.003,
    window: int | None = 7,
    blend: str = "poisson",
    label: int | None = None,
    seed: int = 0,
) -> list[Repair]:
    """Repair images (N, C, H, W) with holes (N, H, W), all restarts of all images in one batch.

    Conditional models try every class unless ``label`` is given (``restarts`` per class).
    """
    if blend not in BLENDS:
        raise ConfigError(f"blend must be one of {sorted(BLENDS)}, got {blend!r}")
    if int(restarts) < 1 or int(steps) < 1 or not float(lr) > 0 or float(prior_weight) < 0:
        raise ConfigError("restarts and steps must be >= 1, lr > 0 and prior_weight >= 0")
    holes = torch.stack([check_hole(h, tuple(images.shape[-2:])) for h in holes])
    generator, critic = module.sampling_generator, module.discriminator
    candidates = _candidate_labels(module.num_classes, label, int(restarts))
    k = len(candidates) if candidates is not None else int(restarts)  # candidates per image
    device = module.device
    targets = images.float().to(device).repeat_interleave(k, 0)
    weights = torch.stack([contextual_weights(~h, window) for h in holes]).to(device)
    weights = weights[:, None].repeat_interleave(k, 0)
    labels = candidates.repeat(len(images)).to(device) if candidates is not None else None
    z0 = module.sample_latent(len(targets), generator=torch.Generator().manual_seed(int(seed)))
    z = z0.detach().clone().requires_grad_(True)
    optimizer = torch.optim.Adam([z], lr=float(lr))
    history = torch.empty(int(steps) + 1, len(targets))
    nets = (generator, critic)
    modes = [net.training for net in nets]
    grads = [[p.requires_grad for p in net.parameters()] for net in nets]
    for net in nets:  # gradients flow to z only; batch norm uses its running statistics
        net.eval().requires_grad_(False)
    try:
        with torch.enable_grad():
            for step in range(int(steps)):
                losses = _loss(generator, critic, z, labels, targets, weights, float(prior_weight))
                optimizer.zero_grad(set_to_none=True)
                losses.sum().backward()  # candidates are independent: each z gets its own gradient
                optimizer.step()
                history[step] = losses.detach().cpu()
        with torch.no_grad():
            history[-1] = _loss(generator, critic, z, labels, targets, weights, float(prior_weight)).cpu()
            best = history[-1].view(len(images), k).argmin(1) + torch.arange(len(images)) * k
            fills = generator(z[best], labels[best] if labels is not None else None).float().cpu()
    finally:
        for net, mode, flags in zip(nets, modes, grads):
            net.train(mode)
            for p, flag in zip(net.parameters(), flags):
                p.requires_grad_(flag)
    out = []
    for image, hole, fill, b in zip(images.float().cpu(), holes.cpu(), fills, best.tolist()):
        out.append(
            Repair(
                image=image,
                hole=hole,
                fill=fill,
                blend=BLENDS[blend](image, fill, hole),
                loss=float(history[-1, b]),
                history=history[:, b].tolist(),
                label=int(labels[b]) if labels is not None else None,
            )
        )
    return out


def _candidate_labels(classes: int, label: int | None, restarts: int) -> Tensor | None:
    if not classes:
        if label is not None:
            raise ConfigError(f"label={label} given, but this model is unconditional")
        return None
    if label is None:
        return torch.arange(classes).repeat_interleave(restarts)
    if not 0 <= int(label) < classes:
        raise ConfigError(f"label {label} out of range: this model has {classes} classes (0..{classes - 1})")
    return torch.full((restarts,), int(label), dtype=torch.long)


def _loss(generator, critic, z, labels, target, weights, prior_weight: float) -> Tensor:
    """Per-restart loss: contextual L1 + prior_weight * -log D(G(z))."""
    fake = generator(z, labels)
    contextual = (weights * (fake - target)).abs().flatten(1).sum(1)
    if prior_weight == 0:
        return contextual
    prior = F.softplus(-critic(fake, labels).float())
    return contextual + prior_weight * prior


def load_image(path, channels: int, size: int) -> Tensor:
    """A PNG (or any file PIL reads) as (C, H, W) in [-1, 1], with the generator's channels."""
    from PIL import Image

    from ganforge.data.pixels import to_float_images

    with Image.open(path) as im:
        array = np.asarray(im.convert("L" if channels == 1 else "RGB"))
    if array.shape[0] != size or array.shape[1] != size:
        raise ConfigError(
            f"{path} is {array.shape[1]}x{array.shape[0]} but the generator draws {size}x{size} images; "
            f"resize it to {size}x{size} first"
        )
    x = torch.from_numpy(array.copy())
    x = x[None] if x.ndim == 2 else x.permute(2, 0, 1)
    return to_float_images(x.contiguous())


def load_mask(path, size: tuple[int, int]) -> Tensor:
    """White (>= 128) marks the hole; black the pixels to keep."""
    from PIL import Image

    with Image.open(path) as im:
        hole = torch.from_numpy(np.asarray(im.convert("L")) >= 128)
    return check_hole(hole, size)


def panel(result: Repair) -> Tensor:
    """Input (hole in grey), mask, fill, blend side by side, as a uint8 grid."""
    from ganforge.callbacks.images import image_grid

    shown = torch.where(result.hole, torch.zeros_like(result.image), result.image)
    mask = result.hole.float()[None].expand_as(result.image) * 2 - 1
    return image_grid(torch.stack([shown, mask, result.fill, result.blend]), nrow=4)


def repair_files(cfg) -> tuple[list[Path], Repair]:
    """What ``python src/repair.py`` does: returns the files written and the repair."""
    from ganforge.callbacks.images import save_png, to_uint8
    from ganforge.checkpoint import load_checkpoint, module_from_checkpoint, pick_device
    from ganforge.writing import refuse_overwrite

    path, ckpt, train_cfg = load_checkpoint(cfg.get("ckpt_path"))
    size, channels = train_cfg.data.get("image_size"), train_cfg.data.get("channels")
    if size is None:
        raise ConfigError("this checkpoint generates 2-D points, not images: there is nothing to repair")
    if not cfg.get("image"):
        raise ConfigError(
            "image is required: python src/repair.py ckpt_path=... image=photo.png box=[x,y,w,h]"
        )
    image_path = Path(str(cfg.image))
    if not image_path.is_file():
        raise ConfigError(f"image={image_path} does not exist")
    if (cfg.get("mask") is None) == (cfg.get("box") is None):
        raise ConfigError("give exactly one of mask=<png> (white = hole) or box=[x,y,w,h]")
    image = load_image(image_path, int(channels), int(size))
    hole_size = tuple(image.shape[-2:])
    if cfg.get("mask") is not None:
        if not Path(str(cfg.mask)).is_file():
            raise ConfigError(f"mask={cfg.mask} does not exist")
        hole = load_mask(str(cfg.mask), hole_size)
    else:
        box = cfg.box if isinstance(cfg.box, str) else list(cfg.box)
        hole = box_hole(box, hole_size)
    out = Path(str(cfg.out)) if cfg.get("out") else image_path.with_name(f"{image_path.stem}_repair.png")
    blended = out.with_name(f"{out.stem}_blend.png")
    refuse_overwrite([out, blended], bool(cfg.get("overwrite", False)))
    module = module_from_checkpoint(path, ckpt, train_cfg).to(pick_device(cfg.get("device")))
    result = repair(
        module,
        image,
        hole,
        restarts=cfg.restarts,
        steps=cfg.steps,
        lr=cfg.lr,
        prior_weight=cfg.prior_weight,
        window=cfg.window,
        blend=cfg.blend,
        label=cfg.get("label"),
        seed=cfg.seed,
    )
    return [save_png(panel(result), out), save_png(to_uint8(result.blend), blended)], result
