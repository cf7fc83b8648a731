"""src/sample.py's logic: grids, class rows, truncation, latent walks, and refusals."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from PIL import Image

import ganforge
from ganforge.pipeline import ConfigError
from ganforge.sampling import interpolate, lerp, mean_latent, sample_grid, slerp, write_samples

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, train_tiny) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("sampling")
    return {name: train_tiny(base / name, name) for name in ["dcgan", "cdcgan", "ring"]}


def sample_cfg(*overrides: str):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("sample", overrides=list(overrides))


def png(path: Path):
    with Image.open(path) as im:
        return im.size, torch.as_tensor(list(im.convert("L").getdata()))


def test_grid_of_64_beside_the_checkpoint_reproducible_by_seed(runs):
    ckpt = runs["dcgan"]
    (first,) = write_samples(sample_cfg(f"ckpt_path={ckpt}"))
    assert first == ckpt.parent / "last_samples_seed0.png"
    assert png(first)[0] == (8 * 18 + 2, 8 * 18 + 2)  # 8x8 images of 16 px, 2 px padding
    again = write_samples(sample_cfg(f"ckpt_path={ckpt}", "overwrite=true"))[0]
    other = write_samples(sample_cfg(f"ckpt_path={ckpt}", "seed=1"))[0]
    assert torch.equal(png(first)[1], png(again)[1])
    assert not torch.equal(png(first)[1], png(other)[1])


def test_existing_output_is_kept_unless_overwrite(runs, tmp_path):
    out = tmp_path / "grid.png"
    out.write_bytes(b"precious")
    with pytest.raises(ConfigError, match="overwrite=true"):
        write_samples(sample_cfg(f"ckpt_path={runs['dcgan']}", f"out={out}"))
    assert out.read_bytes() == b"precious"
    write_samples(sample_cfg(f"ckpt_path={runs['dcgan']}", f"out={out}", "overwrite=true"))
    assert png(out)[0][0] > 0


def test_conditional_default_is_one_row_per_class(runs):
    gan = ganforge.load(runs["cdcgan"])
    images, labels = sample_grid(gan, nrow=6)
    assert images.shape == (60, 1, 16, 16)
    assert labels.tolist() == [k for k in range(10) for _ in range(6)]
    _, labels = sample_grid(gan, nrow=4, labels=[3, 7])
    assert labels.tolist() == [3] * 4 + [7] * 4
    _, labels = sample_grid(gan, num_samples=5, labels=2)
    assert labels.tolist() == [2] * 5


def test_bad_labels_and_truncation_are_refused(runs):
    gan, cond = ganforge.load(runs["dcgan"]), ganforge.load(runs["cdcgan"])
    with pytest.raises(ConfigError, match="unconditional"):
        sample_grid(gan, labels=[1])
    with pytest.raises(ConfigError, match="out of range"):
        sample_grid(cond, labels=[3, 10])
    with pytest.raises(ConfigError, match="out of range"):
        sample_grid(cond, labels=-1)
    for psi in (0, -0.5, 1.5):
        with pytest.raises(ConfigError, match=r"truncation must be in \(0, 1\]"):
            sample_grid(gan, truncation=psi)


def test_truncation_pulls_latents_towards_the_measured_mean(runs):
    gan = ganforge.load(runs["dcgan"])
    mean = mean_latent(gan, 10_000)
    assert mean.shape == (16,) and mean.abs().max() < 0.05  # N(0, I): ~0, +-1/sqrt(10k) per coordinate
    full, _ = sample_grid(gan, num_samples=32, seed=3)
    half, _ = sample_grid(gan, num_samples=32, seed=3, truncation=0.5)
    tiny, _ = sample_grid(gan, num_samples=32, seed=3, truncation=1e-6)
    centre = gan.sample(1, z=mean[None])
    assert (tiny - centre).abs().max() < 1e-4  # psi -> 0: every sample is G(mean)
    assert (half - centre).abs().mean() < (full - centre).abs().mean()


def test_individual_pngs(runs, tmp_path):
    files = write_samples(
        sample_cfg(f"ckpt_path={runs['cdcgan']}", "individual=true", f"out={tmp_path / 'each'}")
    )
    assert len(files) == 80 and files[0].name == "00000_class0.png" and files[-1].name == "00079_class9.png"
    assert png(files[0])[0] == (16, 16)


def test_slerp_keeps_the_norm_and_hits_the_endpoints():
    a, b = torch.randn(3, 64), torch.randn(3, 64)
    a, b = a / a.norm(dim=1, keepdim=True), b / b.norm(dim=1, keepdim=True)
    t = torch.linspace(0, 1, 7)
    walk = slerp(a, b, t)
    assert torch.allclose(walk[:, 0], a, atol=1e-6) and torch.allclose(walk[:, -1], b, atol=1e-6)
    assert torch.allclose(walk.norm(dim=2), torch.ones(3, 7), atol=1e-5)  # stays on the sphere
    assert (lerp(a, b, t).norm(dim=2)[:, 3] < 0.9).all()  # the chord cuts inside it
    assert torch.allclose(slerp(a, a, t), a[:, None].expand(-1, 7, -1), atol=1e-6)  # parallel ends


def test_interpolation_grid_and_gif(runs):
    gan = ganforge.load(runs["cdcgan"])
    walks = interpolate(gan, num_walks=3, steps=5)
    assert walks.shape == (3, 5, 1, 16, 16)
    png_path, gif_path = write_samples(
        sample_cfg(f"ckpt_path={runs['cdcgan']}", "mode=interpolate", "num_walks=4", "steps=6", "method=lerp")
    )
    assert png(png_path)[0] == (6 * 18 + 2, 4 * 18 + 2)
    with Image.open(gif_path) as gif:
        assert gif.n_frames == 2 * 6 - 2  # there and back
    with pytest.raises(ConfigError, match="one label per walk"):
        interpolate(gan, num_walks=3, labels=[1, 2])


def test_points_get_a_scatter_plot(runs):
    (path,) = write_samples(sample_cfg(f"ckpt_path={runs['ring']}", "num_samples=500"))
    assert path.name == "last_scatter_seed0.png" and png(path)[0][0] > 100
    with pytest.raises(ConfigError, match="2-D points"):
        write_samples(sample_cfg(f"ckpt_path={runs['ring']}", "mode=interpolate"))


def test_command_line(runs, tmp_path):
    out = tmp_path / "cli.png"
    args = [f"ckpt_path={runs['dcgan']}", f"out={out}", "truncation=0.7", f"hydra.run.dir={tmp_path / 'h'}"]
    proc = subprocess.run(
        [sys.executable, str(ROOT / "src" / "sample.py"), *args], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert out.is_file() and str(out) in proc.stdout
