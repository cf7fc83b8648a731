"""benchmarks/architectures.py, net_speed.py, toy2d.py and limited_data.py on tiny budgets: a run's record,
the real-data floor's plumbing, the tables and the merge (the figures themselves come from
the full runs the scripts' docstrings give)."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
import tempfile
from argparse import Namespace
from pathlib import Path

import pytest
import torch

from ganforge.nets.dcgan import Generator

ROOT = Path(__file__).resolve().parents[1]


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # the spawned workers and dataclasses look the module up
    spec.loader.exec_module(module)
    return module


architectures = load("architectures")
net_speed = load("net_speed")
toy2d = load("toy2d")
limited_data = load("limited_data")  # after architectures, whose helpers it imports


@pytest.fixture
def tmp_temp(tmp_path, monkeypatch):
    """The scripts' mkdtemp run directories go under tmp_path."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def test_budget_is_lightning_max_time():
    assert architectures.budget(10) == "00:00:10:00"
    assert architectures.budget(61.5) == "00:01:01:30"
    assert architectures.budget(0.001) == "00:00:00:01"  # never zero: Lightning would not train


def test_set_overrides_name_a_known_model():
    assert architectures.parse_sets(["resnet:loss.n_critic=5", "resnet:x=1"]) == {
        "resnet": ["loss.n_critic=5", "x=1"]
    }
    with pytest.raises(SystemExit, match="MODEL:OVERRIDE"):
        architectures.parse_sets(["stylegan:loss.n_critic=5"])
    with pytest.raises(SystemExit):
        architectures.parse_sets(["loss.n_critic=5"])


def test_every_recipe_names_configs_that_exist_or_is_reported_missing(monkeypatch):
    monkeypatch.setitem(
        architectures.RECIPES, "nope", {"overrides": ["model=nope", "loss=hinge"], "note": ""}
    )
    assert architectures.missing_configs("nope") == ["conf/model/nope.yaml"]
    assert architectures.missing_configs("dcgan") == []


def test_floor_plumbing_same_images_give_zero_and_halves_do_not(tmp_temp):
    x = architectures.DigitsDataModule(image_size=32).real_samples()[:600]
    cfg = architectures.compose_cfg(["trainer=cpu"], tmp_temp)
    same = architectures.instantiate(cfg.metrics, num_fake=300, cache_dir=None).evaluator
    same.prepare(architectures.Images(x[:300]), "cpu")
    assert same.evaluate(architectures.Replay(x[:300]))["fid"] == pytest.approx(0.0, abs=1e-3)
    other = architectures.instantiate(cfg.metrics, num_fake=300, cache_dir=None).evaluator
    other.prepare(architectures.Images(x[:300]), "cpu")
    assert other.evaluate(architectures.Replay(x[300:]))["fid"] > 0.1


def test_one_run_stops_at_the_wall_clock_budget_and_records_its_counts(tmp_temp):
    tiny = (
        "model.generator.width=4",
        "model.discriminator.width=4",
        "metrics.num_fake=64",
        "metrics.cache_dir=null",
    )
    row = architectures.run("dcgan", 0, 2 / 60, 1, tiny)
    assert 2.0 <= row["train_seconds"] < 10  # max_time=2 s ends an otherwise endless fit
    assert row["g_steps"] > 0 and row["images"] == 64 * row["d_steps"]
    assert row["img_per_s"] == pytest.approx(row["images"] / row["train_seconds"])
    assert row["g_params"] == sum(p.numel() for p in Generator(32, 1, 100, 4).parameters())
    assert math.isfinite(row["fid"]) and row["protocol"]["n_fake"] == 64
    floor = {"fid": [1.0, 2.0], "mean": 1.5, "std": 0.7, "n_real": 898, "n_fake": 899}
    summary = architectures.summarise([row, {**row, "seed": 1, "fid": row["fid"] + 2}], 3.0)
    env = {"minutes": 2 / 60, "jobs": 1, "threads": 1, "cores": 2, "n_fake": 64, "n_real": 1797}
    md = architectures.table(summary, floor, env, {"r3gan": "conf/model/r3gan.yaml not found"})
    assert f"| {row['fid'] + 1:.2f} ± {2**0.5:.2f} |" in md  # mean ± std over the two seeds
    assert "| ≤ 3.00 |" in md and "skipped: conf/model/r3gan.yaml not found" in md
    assert "1 run(s) at a time with 1 torch thread(s) each, on 2 cores" in md


def test_net_speed_failure_names_the_reason_not_a_warning_before_it():
    warning = "lightning/_pytree.py:21: `isinstance(treespec, LeafSpec)` is deprecated"
    guard = "net_speed: resident memory 11.4 GB passed --max-memory-gb 11.4: stopped"
    assert net_speed.failure_reason(f"{warning}\n{guard}\n") == guard
    traceback = "Traceback (most recent call last):\n  File x\nRuntimeError: a | b"
    assert net_speed.failure_reason(f"{warning}\n{traceback}") == "RuntimeError: a / b"  # one markdown cell
    assert net_speed.failure_reason("") == "no output"


def test_net_speed_times_whole_generator_steps_on_synthetic_cifar(tmp_temp):
    args = Namespace(
        device="cpu",
        batch=16,
        steps=2,
        warmup=1,
        precision="32-true",
        threads=1,
        max_seconds=None,
        max_memory_gb=None,
        tiny=True,
        overrides=[],
    )
    row = net_speed.measure(args, "dcgan")
    assert row["g_steps"] == 3 and row["g_steps_timed"] == 2  # the warm-up step is not timed
    assert row["real_images_timed"] == 16 * row["d_steps_timed"] == 32
    assert row["real_img_per_s"] == pytest.approx(32 / row["timed_seconds"])
    assert row["peak_memory_mb"] >= row["rss_before_build_mb"] > 0
    failed = {"preset": "r3gan", "precision": "32-true", "batch": 16, "error": "exit 3: out of memory"}
    for i, rows in enumerate(([row], [failed])):
        (tmp_temp / f"part{i}.json").write_text(json.dumps({"env": {}, "rows": rows}))
    net_speed.write(
        [r for i in range(2) for r in json.loads((tmp_temp / f"part{i}.json").read_text())["rows"]],
        {"device": "cpu"},
        tmp_temp / "merged",
    )
    md = (tmp_temp / "merged.md").read_text()
    assert "| dcgan | 32-true | 16 | 1 | 2 |" in md and "failed: exit 3: out of memory" in md
    assert len(json.loads((tmp_temp / "merged.json").read_text())["rows"]) == 2


def test_synthetic_images_are_cifar_shaped_uint8_with_labels():
    data = net_speed.SyntheticImages(
        size=100, batch_size=10, image_size=32, channels=3, num_classes=10, root="unused", split="train"
    )
    data.setup("fit")
    x, y = data.train_set.x, data.train_set.y
    assert x.shape == (100, 3, 32, 32) and x.dtype == torch.uint8 and int(x.max()) > 200
    assert y.min() >= 0 and y.max() < 10


def test_toy2d_resume_reruns_only_what_is_not_on_record(tmp_path, monkeypatch):
    calls = []

    def fake_run(data, loss, seed, steps, overrides=()):
        calls.append((data, loss, seed))
        hq = 0.9 + seed / 100
        return {"data": data, "loss": loss, "seed": seed, "g_steps": steps, "overrides": list(overrides),
                "recipe": toy2d.recipe_id(data, loss), "threads": 1, "seconds": 1.0, "modes": 8,
                "num_modes": 8, "hq_fraction": hq, "kl": 0.0, "shortfall": 0.0}  # fmt: skip

    monkeypatch.setattr(toy2d, "run", fake_run)
    kept = fake_run("ring", "hinge", 0, 7)
    old = {**fake_run("ring", "hinge", 1, 7), "hq_fraction": 0.5}
    del old["overrides"]  # runs recorded before overrides were: counted as none
    other_budget = fake_run("ring", "hinge", 2, 99)
    # a run of the recipe as it was before it was tuned: not summarised with the new one's
    stale = {**fake_run("ring", "hinge", 3, 7), "recipe": "0123456789ab", "hq_fraction": 0.1}
    records = [json.dumps(r) for r in (kept, old, other_budget, stale)]
    (tmp_path / "toy2d_runs.jsonl").write_text("\n".join(records) + '\n{"data": "ri')  # torn line
    calls.clear()
    args = ["toy2d", "--resume", "--data", "ring", "--losses", "hinge", "--seeds", "0", "1", "2", "3"]
    monkeypatch.setattr(sys, "argv", [*args, "--steps", "7", "--out", str(tmp_path)])
    toy2d.main()
    assert calls == [("ring", "hinge", 2), ("ring", "hinge", 3)]  # seeds 0 and 1 are on record
    lines = (tmp_path / "toy2d_runs.jsonl").read_text().splitlines()
    assert [json.loads(line)["seed"] for line in lines] == [0, 1, 2, 2, 3]
    (row,) = [s for s in json.loads((tmp_path / "toy2d.json").read_text())["summary"] if s["g_steps"] == 7]
    assert row["seeds"] == 4  # the 99-step run is a row of its own
    assert row["hq_percent"][0] == pytest.approx(100 * (0.9 + 0.5 + 0.92 + 0.93) / 4)


def test_toy2d_recipe_id_follows_the_recipe_file():
    assert toy2d.recipe_id("ring", "hinge") != toy2d.recipe_id("grid", "hinge")
    assert toy2d.recipe_id("ring", "no_such_loss") is None


def test_architectures_resume_runs_only_the_runs_not_on_record(tmp_path, monkeypatch):
    calls = []

    def fake_run(model, seed, minutes, threads, overrides):
        calls.append((model, seed))
        recipe = [*architectures.RECIPES[model]["overrides"], *overrides]
        return {"model": model, "seed": seed, "recipe": recipe, "minutes": minutes, "threads": threads,
                "g_steps": 10, "d_steps": 10, "images": 640, "img_per_s": 64.0, "g_params": 1,
                "d_params": 1, "fid": 5.0 + seed, "protocol": {"n_fake": 2, "n_real": 2}}  # fmt: skip

    floor = {"fid": [1.0], "mean": 1.0, "std": 0.0, "n_real": 1, "n_fake": 1}
    monkeypatch.setattr(architectures, "run", fake_run)
    monkeypatch.setattr(architectures, "real_floor", lambda splits: floor)
    old = [fake_run("dcgan", 0, 10.0, 1, ()), fake_run("dcgan", 1, 5.0, 1, ())]  # seed 1: other budget
    (tmp_path / "architectures.json").write_text(json.dumps({"runs": old}))
    calls.clear()
    argv = ["architectures", "--resume", "--models", "dcgan", "--seeds", "0", "1", "--threads", "1"]
    monkeypatch.setattr(sys, "argv", [*argv, "--out", str(tmp_path)])
    architectures.main()
    assert calls == [("dcgan", 1)]
    result = json.loads((tmp_path / "architectures.json").read_text())
    assert sorted((r["seed"], r["minutes"]) for r in result["runs"]) == [(0, 10.0), (1, 10.0)]
    assert result["summary"][0]["fid"][0] == pytest.approx(5.5)
    recorded = (tmp_path / "architectures_runs.jsonl").read_text().splitlines()
    assert len(recorded) == 3  # the 5-minute run stays on record, out of the table


def test_limited_data_run_scores_a_subset_against_every_digit(tmp_temp):
    r = limited_data.run(0.1, "ada+lecam", 0, 3, 1, 20.0, 8)
    assert (r["images"], r["g_steps"]) == (150, 3)
    assert r["protocol"]["subset"] is None  # scored against all digits, not the subset
    assert r["protocol"]["n_real"] == limited_data.N_DIGITS
    assert math.isfinite(r["fid"]) and r["ada_p"] is not None
    for name in ("precision", "recall", "coverage", "memorisation"):
        assert 0.0 <= r[name] <= 1.0, name


def test_limited_data_adds_lecam_to_the_better_augmentation_and_resumes(tmp_path, monkeypatch):
    calls = []

    def fake_run(fraction, method, seed, steps, threads, ada_kimg, width):
        calls.append((fraction, method, seed))
        fid = {"none": 9.0, "diffaugment": 7.0, "ada": 8.0}.get(method, 6.0) + fraction
        return {"fraction": fraction, "images": round(fraction * limited_data.POOL), "method": method,
                "seed": seed, "steps": steps, "threads": threads, "ada_kimg": ada_kimg, "width": width,
                "fid": fid, "precision": 0.5, "recall": 0.5, "density": 1.0, "coverage": 0.5,
                "memorisation": 0.5, "ada_p": 0.1 if method.startswith("ada") else None,
                "protocol": {"n_fake": 2, "n_real": 2}}  # fmt: skip

    floor = {"fid": [1.0], "mean": 1.0, "std": 0.0, "n_real": 1, "n_fake": 1}
    monkeypatch.setattr(limited_data, "run", fake_run)
    monkeypatch.setattr(limited_data, "real_floor", lambda splits: floor)
    argv = ["limited_data", "--fractions", "0.1", "--seeds", "0", "--threads", "1", "--out", str(tmp_path)]
    monkeypatch.setattr(sys, "argv", argv)
    limited_data.main()
    assert calls == [
        (0.1, "none", 0),
        (0.1, "diffaugment", 0),
        (0.1, "ada", 0),
        (0.1, "diffaugment+lecam", 0),
    ]
    result = json.loads((tmp_path / "limited_data.json").read_text())
    assert result["gains"]["0.1"] == {"best": "diffaugment+lecam", "gain": pytest.approx(3.0), "none": 9.1}
    calls.clear()
    monkeypatch.setattr(sys, "argv", [*argv, "--resume"])
    limited_data.main()
    assert calls == []  # every run is on record
    assert len((tmp_path / "limited_data_runs.jsonl").read_text().splitlines()) == 4


def test_limited_data_method_names_give_their_overrides():
    assert limited_data.method_overrides("none", 20) == []
    assert limited_data.method_overrides("ada-t0.9+lecam", 20) == [
        "model.augment=ada",
        "model.augment_options={speed_kimg:20,target:0.9}",
        "+reg=lecam",
    ]
    assert limited_data.base_method("ada-t0.9+lecam") == "ada"
    with pytest.raises(ValueError, match="only ada"):
        limited_data.method_overrides("diffaugment-t0.9", 20)
