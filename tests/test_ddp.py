"""DDP on 2 CPU processes (gloo) through the command line: ``trainer=ddp_sim``.

Every run is a subprocess of its own (two process groups in one pytest process collide).
``ddp_worker.RankProbe`` makes each rank write what it holds outside the run directory,
so the tests can compare the ranks and check that the run directory is rank 0's alone.
One 2-epoch run that checkpoints every epoch serves most tests; a second run resumes it
from the first epoch's checkpoint.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from cli import TINY_DCGAN, run_train_script
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import OmegaConf

from ganforge.data.toy2d import Toy2DDataModule
from ganforge.metrics.evaluator import FidelityEvaluator
from ganforge.pipeline import build, build_module, train

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent

pytestmark = pytest.mark.ddp

TINY = [
    *TINY_DCGAN,
    "trainer=ddp_sim",
    "+trainer.limit_train_batches=4",
    "trainer.max_epochs=2",
    "trainer.log_every_n_steps=1",
    "callbacks.model_checkpoint.every_n_epochs=1",
    "callbacks.rich_progress_bar.refresh_rate=0",
    "metrics=digits",
    "metrics.num_fake=101",  # odd: ranks draw ceil(101 / 2) = 51 each
    "metrics.batch_size=32",
    "metrics.kid_subsets=5",
    "metrics.kid_subset_size=50",
    "+callbacks.probe._target_=ddp_worker.RankProbe",
    # ADA, adjusting every 3 D steps: the epoch-0 checkpoint (4 steps) falls mid-interval
    "model.augment=ada",
    "model.augment_options={interval:3,speed_kimg:1}",
]


def run_train(args: list[str], cwd: Path, timeout: int = 240) -> subprocess.CompletedProcess:
    # the ranks import ddp_worker.RankProbe
    return run_train_script(args, cwd, timeout, env={**os.environ, "PYTHONPATH": str(TESTS)})


def _ranks(probe_dir: Path) -> list[dict]:
    return [torch.load(probe_dir / f"rank{r}.pt", weights_only=False) for r in range(2)]


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    """A 2-epoch, 2-rank run; its run directory, the ranks' probes and the cwd it ran in."""
    cwd = tmp_path_factory.mktemp("ddp")
    run_dir, probe = cwd / "run", cwd / "probe"
    proc = run_train([*TINY, f"+callbacks.probe.out={probe}", f"hydra.run.dir={run_dir}"], cwd)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return {"run_dir": run_dir, "ranks": _ranks(probe), "cwd": cwd, "stderr": proc.stderr}


def test_each_network_has_its_own_wrapper_and_ranks_end_equal(ddp_run):
    r0, r1 = ddp_run["ranks"]
    assert (r0["world_size"], r1["world_size"]) == (2, 2)
    assert r0["strategy"] == "GANDDPStrategy"
    assert r0["wrapped"] == {
        "generator": "DistributedDataParallel",
        "discriminator": "DistributedDataParallel",
    }
    for key, value in r0["state_dict"].items():  # parameters and buffers, bit for bit
        assert torch.equal(value, r1["state_dict"][key]), key
    # 2 epochs x 4 batches, one D and one G step each; global_step counts G steps
    for r in (r0, r1):
        assert (r["g_steps"], r["d_steps"], r["global_step"]) == (8, 8, 8)
        assert r["images_seen"] == 8 * 32 * 2  # both ranks' images
    ckpt = torch.load(ddp_run["run_dir"] / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    for key, value in ckpt["state_dict"].items():
        assert torch.equal(value, r0["state_dict"][key]), key
    assert ckpt["ganforge"]["steps"]["generator"] == 8 and ckpt["global_step"] == 8
    assert ckpt["ganforge"]["images"]["discriminator"] == 512 and ckpt["ganforge"]["world_size"] == 2


def test_ranks_draw_their_own_noise_and_data(ddp_run):
    r0, r1 = ddp_run["ranks"]
    assert sorted(r0["noise"]) == list(range(8))
    for step in r0["noise"]:
        assert not torch.equal(r0["noise"][step], r1["noise"][step]), step
        assert not torch.equal(r0["batches"][step], r1["batches"][step]), step  # DistributedSampler shards


def test_only_rank_zero_writes_the_run_directory(ddp_run):
    run_dir = ddp_run["run_dir"]
    files = sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if p.is_file())
    assert files == [
        ".hydra/config.yaml",
        ".hydra/hydra.yaml",
        ".hydra/overrides.yaml",
        "checkpoints/epoch_0000.ckpt",
        "checkpoints/epoch_0001.ckpt",
        "checkpoints/last.ckpt",
        "csv/metrics.csv",
        "final_metrics.json",
        "metrics.jsonl",
        "samples/epoch_0000.png",
        "samples/epoch_0001.png",
        "samples/last.png",
        "train.log",
    ]
    records = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert len(records) == 1 and json.loads(records[0])["world_size"] == 2
    assert (run_dir / "train.log").read_text().count("Run directory") == 1  # rank 1 logs to the console
    # no timestamped directory of a child process next to it: outputs/ holds the metric cache only
    assert [p.name for p in (ddp_run["cwd"] / "outputs").iterdir()] == [".cache"]


def test_metrics_are_the_single_process_values_of_the_same_samples(ddp_run):
    r0, r1 = ddp_run["ranks"]
    names = ("val/fid", "val/kid_mean", "val/is_mean")
    for name in names:
        assert math.isfinite(r0["metrics"][name]) and r0["metrics"][name] == r1["metrics"][name], name
    # one process, the final weights, the samples the two ranks drew (rank r: seed + r)
    ckpt = torch.load(ddp_run["run_dir"] / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    cfg = OmegaConf.create(ckpt["ganforge"]["config"])
    module = build_module(cfg)
    module.load_state_dict(ckpt["state_dict"])
    evaluator: FidelityEvaluator = instantiate(cfg.metrics).evaluator
    evaluator.prepare(instantiate(cfg.data), "cpu")
    share = math.ceil(evaluator.num_fake / 2)
    for rank in range(2):
        g = torch.Generator().manual_seed(evaluator.seed + rank)
        for start in range(0, share, evaluator.batch_size):
            evaluator.update(module.sample(min(evaluator.batch_size, share - start), generator=g))
    single = evaluator.compute()
    for name in names:
        assert r0["metrics"][name] == pytest.approx(single[name.split("/")[1]], rel=1e-4), name


def test_ada_averages_r_t_over_the_ranks_and_every_rank_holds_one_p(ddp_run):
    r0, r1 = ddp_run["ranks"]
    interval, adjusted = 3, [3, 6]
    locals_differ = False
    for step in adjusted:
        window = range(step - interval + 1, step + 1)
        per_rank = [[(s, c) for d, s, c in r["ada_signs"] if d in window] for r in (r0, r1)]
        assert [len(p) for p in per_rank] == [interval, interval]
        signs = sum(s for p in per_rank for s, _ in p)
        count = sum(c for p in per_rank for _, c in p)
        local = [sum(s for s, _ in p) / sum(c for _, c in p) for p in per_rank]
        locals_differ |= local[0] != local[1]
        for r in (r0, r1):
            assert r["ada_rt"][step] == pytest.approx(signs / count, abs=1e-6), step
    assert locals_differ  # else this run could not tell an average from rank 0's own value
    assert r0["state_dict"]["augment.p"] == r1["state_dict"]["augment.p"] > 0
    ckpt = torch.load(
        ddp_run["run_dir"] / "checkpoints" / "epoch_0000.ckpt", map_location="cpu", weights_only=True
    )
    # mid-interval (D step 4 of an interval of 3): each rank's own sign sum of step 4 is kept
    saved = ckpt["ganforge_ddp"]["rank_state"]
    for rank, r in enumerate((r0, r1)):
        (own,) = [s for d, s, _ in r["ada_signs"] if d == 4]
        assert float(saved[rank]["ada"]["signs"]) == own


def test_resume_under_ddp_equals_the_uninterrupted_run(ddp_run, tmp_path):
    ckpt = ddp_run["run_dir"] / "checkpoints" / "epoch_0000.ckpt"
    probe = tmp_path / "probe"
    proc = run_train(
        [
            *(a for a in TINY if not a.startswith("metrics")),
            "metrics=none",  # the metrics draw from their own generators: no effect on training
            f"+callbacks.probe.out={probe}",
            f"hydra.run.dir={tmp_path / 'run'}",
            f"ckpt_path={ckpt}",
        ],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    for full, resumed in zip(ddp_run["ranks"], _ranks(probe)):
        assert sorted(resumed["noise"]) == [4, 5, 6, 7]
        for step in resumed["noise"]:  # every rank continues its own noise stream
            assert torch.equal(resumed["noise"][step], full["noise"][step]), step
        for key, value in full["state_dict"].items():
            assert torch.equal(resumed["state_dict"][key], value), key
        assert resumed["g_steps"] == resumed["global_step"] == 8


def test_resume_on_another_world_size_continues_with_a_warning(ddp_run, compose, tmp_path, caplog):
    ckpt = ddp_run["run_dir"] / "checkpoints" / "epoch_0000.ckpt"  # 4 G steps of 2 x 32 images
    cfg = compose(
        [
            *(a for a in TINY if not a.startswith(("trainer=", "metrics", "+callbacks.probe"))),
            "trainer=cpu",
            "metrics=none",
            f"ckpt_path={ckpt}",
        ]
    )
    with pytest.warns(UserWarning, match="2 process\\(es\\) on 1: .* re-seeded"):
        _, objects = train(cfg)
    module = objects["model"]
    # one more epoch of 4 batches of 32 in one process, on top of the checkpoint's counts
    assert (module.g_steps, module.images_seen) == (4 + 4, 4 * 64 + 4 * 32)


def test_penalties_through_the_ddp_wrappers_and_the_image_budget_over_ranks(tmp_path):
    # gradient penalty and R1 differentiate through each rank's wrapper (double backward):
    # DDP's gradient must be the mean of what each rank computes on plain nets
    done = subprocess.run(
        [sys.executable, str(TESTS / "ddp_worker_penalties.py"), str(tmp_path)],
        env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(TESTS)},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for rank in range(2):
        found = json.loads((tmp_path / f"penalties{rank}.json").read_text())
        assert found["max_diff_from_mean"] < 1e-6 and found["max_diff_from_local"] > 1e-3
        assert (found["d_steps"], found["images_seen"]) == (3, 192)  # max_kimg over both ranks
    import ddp_worker_penalties as worker
    from gan_parts import fit

    single = worker.build()  # the same budget in one process: twice the steps, as many images
    fit(
        single,
        Toy2DDataModule(kind="ring", batch_size=worker.BATCH, samples_per_epoch=32 * 64),
        max_epochs=-1,
    )
    assert (single.d_steps, single.images_seen) == (6, 192)


def test_weight_check_names_what_differs(tmp_path):
    done = subprocess.run(
        [sys.executable, str(TESTS / "ddp_worker_consistency.py"), str(tmp_path)],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for rank in range(2):  # every rank gets the same answer
        out = json.loads((tmp_path / f"consistency{rank}.json").read_text())
        assert out["equal"] == []
        assert out["differing"] == ["0.bias", "1.running_mean"]
        assert out["ignored"] == ["0.bias"]
        assert out["after_broadcast"] == ["0.bias"]  # buffers synced, parameters untouched


def test_sync_batchnorm_on_the_cpu_fails_before_launch(compose):
    cfg = compose(["trainer=ddp_sim", "trainer.sync_batchnorm=true", "metrics=none"])
    with pytest.raises(InstantiationException, match="sync_batchnorm=false"):
        build(cfg)


def test_ddp_sim_builds_the_gan_strategy_on_two_gloo_ranks(compose):
    sim = build(compose(["trainer=ddp_sim", "metrics=none"]))["trainer"]
    assert type(sim.strategy).__name__ == "GANDDPStrategy"
    assert sim.world_size == 2 and sim.strategy.process_group_backend == "gloo"
