"""Semantic inpainting: the mechanics (quality is measured by benchmarks/repair.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from PIL import Image

import ganforge
from ganforge.pipeline import ConfigError
from ganforge.repair import box_hole, contextual_weights, poisson_blend, repair, repair_files

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, train_tiny) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("repair")
    return {name: train_tiny(base / name, name) for name in ["dcgan", "cdcgan"]}


@pytest.fixture
def digit(tmp_path) -> Path:
    """A real 16x16 digit as a PNG, the way a user would hand one over."""
    from ganforge.data.digits import load_digits_tensor

    x = load_digits_tensor(16)[0][0, 0]
    path = tmp_path / "digit.png"
    Image.fromarray(((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()).save(path)
    return path


def repair_cfg(*overrides: str):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("repair", overrides=["steps=20", "restarts=2", *overrides])


def test_contextual_weights_are_highest_next_to_the_hole():
    hole = box_hole([6, 6, 4, 4], (16, 16))
    w = contextual_weights(~hole, window=7)
    assert (w[hole] == 0).all()
    assert w[5, 8] > w[3, 8] > 0  # one pixel from the hole outweighs three
    assert w[0, 0] == 0  # far background: no hole pixel in its window
    assert torch.equal(contextual_weights(~hole, window=0), (~hole).float())


def test_poisson_blend_keeps_known_pixels_and_follows_the_fill_gradients():
    hole = box_hole("4,4,8,8", (16, 16))
    image = torch.rand(1, 16, 16) * 2 - 1
    fill = torch.linspace(-0.5, 0.5, 16).view(1, 1, 16).expand(1, 16, 16)
    out = poisson_blend(image, fill, hole)
    assert torch.equal(out[:, ~hole], image[:, ~hole])
    # a constant image and a fill that is the same constant plus an offset: the offset vanishes
    flat = torch.full((1, 16, 16), 0.2)
    assert torch.allclose(poisson_blend(flat, flat + 0.5, hole), flat, atol=1e-6)


def test_repair_lowers_the_loss_and_preserves_the_unmasked_pixels(runs):
    gan = ganforge.load(runs["dcgan"])
    image = torch.rand(1, 16, 16) * 2 - 1
    hole = box_hole([4, 4, 8, 8], (16, 16))
    before = {n: p.clone() for n, p in gan.state_dict().items()}
    result = repair(gan, image, hole, restarts=3, steps=60, lr=0.05)
    assert result.fill.shape == result.blend.shape == (1, 16, 16)
    assert result.history[-1] < result.history[0] and result.loss == result.history[-1]
    assert torch.equal(result.blend[:, ~hole], image[:, ~hole])
    assert result.blend.abs().max() <= 1
    for name, value in gan.state_dict().items():  # the networks are only read
        assert torch.equal(value, before[name]), name
    assert all(p.requires_grad for p in gan.discriminator.parameters())


def test_the_best_restart_is_kept(runs):
    gan = ganforge.load(runs["dcgan"])
    image, hole = torch.zeros(1, 16, 16), box_hole([0, 0, 8, 8], (16, 16))
    one = repair(gan, image, hole, restarts=1, steps=5, seed=0)
    many = repair(gan, image, hole, restarts=6, steps=5, seed=0)  # candidate 0 is the same start
    assert many.loss <= one.loss + 1e-5


def test_conditional_models_try_every_class_or_the_one_given(runs):
    gan = ganforge.load(runs["cdcgan"])
    image, hole = torch.zeros(1, 16, 16), box_hole([4, 4, 8, 8], (16, 16))
    assert 0 <= repair(gan, image, hole, restarts=1, steps=3).label < 10
    assert repair(gan, image, hole, restarts=2, steps=3, label=7).label == 7
    with pytest.raises(ConfigError, match="out of range"):
        repair(gan, image, hole, steps=1, label=10)
    with pytest.raises(ConfigError, match="unconditional"):
        repair(ganforge.load(runs["dcgan"]), image, hole, steps=1, label=1)


def test_command_writes_the_panel_and_the_repaired_image(runs, digit):
    files, _ = repair_files(repair_cfg(f"ckpt_path={runs['dcgan']}", f"image={digit}", "box=[4,4,8,8]"))
    panel, blend = files
    assert panel == digit.with_name("digit_repair.png") and blend == digit.with_name("digit_repair_blend.png")
    with Image.open(panel) as im:
        assert im.size == (4 * 18 + 2, 18 + 2)  # input, mask, fill, blend
    with Image.open(blend) as im, Image.open(digit) as original:
        a, b = np.asarray(im), np.asarray(original)
    hole = box_hole([4, 4, 8, 8], (16, 16)).numpy()
    assert np.abs(a[~hole].astype(int) - b[~hole].astype(int)).max() <= 1  # [-1,1] round trip
    with pytest.raises(ConfigError, match="overwrite=true"):
        repair_files(repair_cfg(f"ckpt_path={runs['dcgan']}", f"image={digit}", "box=[4,4,8,8]"))


def test_mask_files(runs, digit, tmp_path):
    mask = np.zeros((16, 16), np.uint8)
    mask[2:6, 3:9] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    out = tmp_path / "out.png"
    _, result = repair_files(
        repair_cfg(
            f"ckpt_path={runs['dcgan']}", f"image={digit}", f"mask={tmp_path / 'mask.png'}", f"out={out}"
        )
    )
    assert torch.equal(result.hole, torch.from_numpy(mask > 0))


@pytest.mark.parametrize(
    ("mask", "message"),
    [
        (np.zeros((16, 16), np.uint8), "hides nothing"),
        (np.full((16, 16), 255, np.uint8), "hides the whole image"),
        (np.zeros((12, 16), np.uint8), "must be the same size"),
    ],
)
def test_bad_masks_are_refused(runs, digit, tmp_path, mask, message):
    Image.fromarray(mask).save(tmp_path / "mask.png")
    with pytest.raises(ConfigError, match=message):
        repair_files(
            repair_cfg(f"ckpt_path={runs['dcgan']}", f"image={digit}", f"mask={tmp_path / 'mask.png'}")
        )


def test_bad_boxes_images_and_options_are_refused(runs, digit, tmp_path):
    ckpt = f"ckpt_path={runs['dcgan']}"
    with pytest.raises(ConfigError, match="does not fit"):
        repair_files(repair_cfg(ckpt, f"image={digit}", "box=[10,10,8,8]"))
    with pytest.raises(ConfigError, match="four integers"):
        repair_files(repair_cfg(ckpt, f"image={digit}", "box=[1,2,3]"))
    with pytest.raises(ConfigError, match="exactly one of"):
        repair_files(repair_cfg(ckpt, f"image={digit}"))
    big = tmp_path / "big.png"
    Image.new("L", (32, 32)).save(big)
    with pytest.raises(ConfigError, match="resize it to 16x16"):
        repair_files(repair_cfg(ckpt, f"image={big}", "box=[1,1,4,4]"))
    with pytest.raises(ConfigError, match="blend must be one of"):
        repair_files(repair_cfg(ckpt, f"image={digit}", "box=[1,1,4,4]", "blend=magic"))


def test_command_line(runs, digit, tmp_path):
    args = [f"ckpt_path={runs['dcgan']}", f"image={digit}", "box=[4,4,8,8]", "steps=5", "restarts=2"]
    args.append(f"hydra.run.dir={tmp_path / 'h'}")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "src" / "repair.py"), *args], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "digit_repair.png" in proc.stdout and digit.with_name("digit_repair_blend.png").is_file()
