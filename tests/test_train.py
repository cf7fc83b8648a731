"""End to end: the command line, the run directory, resuming."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import torch
from cli import TINY_DCGAN, run_train_script

from ganforge.pipeline import train

ROOT = Path(__file__).resolve().parents[1]


def run_cli(args: list[str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    # the short error a user sees, not Hydra's full traceback
    return run_train_script(args, cwd, timeout, env={**os.environ, "HYDRA_FULL_ERROR": "0"})


def test_command_line_run_leaves_a_complete_run_directory(tmp_path):
    run_dir = tmp_path / "run"
    proc = run_cli(
        [
            *TINY_DCGAN,
            "trainer=debug",
            "trainer.limit_train_batches=4",
            "trainer.max_epochs=2",
            "trainer.detect_anomaly=false",
            "metrics=none",
            f"hydra.run.dir={run_dir}",
        ],
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (run_dir / ".hydra" / "config.yaml").is_file()
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    metrics = (run_dir / "csv" / "metrics.csv").read_text()
    for key in (
        "train/d_loss",
        "train/g_loss",
        "train/d_real",
        "train/d_fake",
        "train/kimg",
        "train/generator_grad_norm",
        "train/discriminator_grad_norm",
    ):
        assert key in metrics
    assert (run_dir / "samples" / "epoch_0000.png").is_file()
    assert (run_dir / "samples" / "epoch_0001.png").is_file()
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["ganforge"]["steps"]["generator"] == 8
    assert ckpt["ganforge"]["config"]["model"]["_target_"] == "ganforge.modules.gan.GAN"


def test_command_line_refuses_a_conv_net_on_points_before_training(tmp_path):
    proc = run_cli(
        ["model=dcgan", "data=ring", "trainer=debug", f"hydra.run.dir={tmp_path / 'r'}"], cwd=tmp_path
    )
    assert proc.returncode != 0
    assert "model=mlp" in proc.stderr
    assert not (tmp_path / "r" / "checkpoints").exists()


def _state(objects) -> dict[str, torch.Tensor]:
    model = objects["model"]
    out = {f"model.{k}": v.clone() for k, v in model.state_dict().items()}
    for i, opt in enumerate(model.optimizers(use_pl_optimizer=False)):
        for pid, st in opt.state_dict()["state"].items():
            for k, v in st.items():
                out[f"opt{i}.{pid}.{k}"] = torch.as_tensor(v).clone()
    for i, cfg in enumerate(objects["trainer"].lr_scheduler_configs):
        out[f"sched{i}.last_epoch"] = torch.tensor(cfg.scheduler.last_epoch)
    return out


@pytest.mark.parametrize(
    "overrides",
    [
        ["model=mlp", "data=ring", "data.samples_per_epoch=2048", "loss=wgan_gp"],
        [*TINY_DCGAN, "model=dcgan", "data=digits", "trainer.limit_train_batches=3"],
        # the checkpoint (3 D steps) falls mid-way through ADA's interval of 2; LeCam's anchors
        [
            *TINY_DCGAN,
            "data=digits",
            "trainer.limit_train_batches=3",
            "model.augment=ada",
            "model.augment_options={interval:2,speed_kimg:1}",
            "+reg=[lecam,bcr]",
        ],
    ],
    ids=["mlp-ring-wgan_gp", "dcgan-digits-vanilla", "dcgan-digits-ada-lecam-bcr"],
)
def test_resume_equals_uninterrupted_training(compose, tmp_path, overrides):
    common = [
        *overrides,
        "trainer.detect_anomaly=false",
        "metrics=none",
        "+model.g_scheduler._target_=torch.optim.lr_scheduler.StepLR",
        "+model.g_scheduler._partial_=true",
        "+model.g_scheduler.step_size=2",
        "+model.g_scheduler.gamma=0.9",
    ]
    full_cfg = compose([*common, "trainer.max_epochs=2"], tmp_path / "full")
    _, full = train(full_cfg)

    first_cfg = compose([*common, "trainer.max_epochs=1"], tmp_path / "first")
    _, _first = train(first_cfg)
    ckpt = Path(first_cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    resumed_cfg = compose([*common, "trainer.max_epochs=2", f"ckpt_path={ckpt}"], tmp_path / "resumed")
    _, resumed = train(resumed_cfg)

    a, b = _state(full), _state(resumed)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=0, msg=f"{k} differs after resume")
    for attr in ("g_steps", "d_steps", "images_seen"):
        assert getattr(resumed["model"], attr) == getattr(full["model"], attr) > 0
    assert resumed["trainer"].global_step == full["trainer"].global_step


def test_toy_run_sends_its_scatter_plot_to_tensorboard(compose, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = compose(
        [
            "experiment=toy_ring",
            "logger=tensorboard",
            "data.samples_per_epoch=81920",  # 80 D steps of 1,024 an epoch: 10 loader batches
            "data.steps_per_batch=8",  # (trainer=debug stops an epoch after 10 batches)
            "trainer.max_steps=160",
            "trainer.enable_model_summary=false",
            "callbacks.rich_progress_bar.refresh_rate=0",
        ]
    )
    _, objects = train(cfg)
    run_dir = Path(objects["trainer"].default_root_dir)
    assert sorted(p.name for p in (run_dir / "samples").glob("scatter_*.png")) == [
        "scatter_0000.png",
        "scatter_0001.png",
    ]
    events = EventAccumulator(str(run_dir / "tensorboard")).Reload()
    assert [e.step for e in events.Images("toy/scatter")] == [80, 160]
    assert {"toy/modes", "toy/hq_fraction", "train/d_loss"} <= set(events.Tags()["scalars"])


def test_every_scalar_image_and_metric_of_a_run_shares_the_generator_step_axis(compose, tmp_path):
    # wgan_gp takes 5 D steps (5 loader batches) per G step: 10 batches an epoch are 2 G
    # steps, so Lightning's loader-batch count (10, 20) and the G steps (2, 4) part at once
    import csv

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = compose(
        [
            *TINY_DCGAN,
            "loss=wgan_gp",
            "logger=many_loggers",  # CSV and TensorBoard
            "trainer.max_epochs=2",
            "trainer.log_every_n_steps=1",
            "trainer.detect_anomaly=false",
            "metrics.every_n_epochs=1",
            "metrics.num_fake=64",
            "metrics.kid_subsets=2",
            "metrics.kid_subset_size=32",
            "callbacks.rich_progress_bar.refresh_rate=0",
        ]
    )
    _, objects = train(cfg)
    run_dir = Path(objects["trainer"].default_root_dir)
    assert objects["model"].g_steps == 4
    events = EventAccumulator(str(run_dir / "tensorboard")).Reload()
    steps = {tag: [e.step for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
    for tag in ("train/d_loss", "train/g_loss", "train/reg/gp", "train/kimg", "lr-generator"):
        assert steps[tag] == [1, 2, 3, 4], tag
    assert steps["val/fid"] == steps["val/kid_mean"] == [2, 4]
    assert [e.step for e in events.Images("samples")] == [2, 4]
    assert set().union(*map(set, steps.values())) == {1, 2, 3, 4}  # nothing on another axis
    with (run_dir / "csv" / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert {int(r["step"]) for r in rows} == {1, 2, 3, 4}
    assert [int(r["step"]) for r in rows if r["val/fid"]] == [2, 4]
    assert [int(r["step"]) for r in rows if r["train/d_loss"]] == [1, 2, 3, 4]
