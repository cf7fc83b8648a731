"""Cost of the FID/IS/KID callback: its FID path against torchmetrics' FID called directly, and the
time the real-statistics cache saves.

Both FID sides get the same generated images (digits plus Gaussian noise, made once and
not timed), the same extractor and the same real statistics. The callback's path is what
``ImageMetrics`` runs per batch: the uint8 map, one extractor pass giving features and
logits, and updates of the FID, KID and IS states; then FID's compute. The direct side is
``torchmetrics.image.fid.FrechetInceptionDistance(feature=extractor)`` fed the same uint8
batches. The sides alternate ``--repeats`` times in one process and the fastest run of each
is kept, so a busy machine slows both alike. The cache figure is ``prepare`` with an empty
cache directory (extract real features, write) against a second ``prepare`` (read).

    OMP_NUM_THREADS=1 python benchmarks/metrics_cost.py                    # digits, ~1 min
    OMP_NUM_THREADS=1 python benchmarks/metrics_cost.py --inception-n 64   # + Inception, random local weights
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from unittest import mock

import torch
import torchmetrics
from torchmetrics.image.fid import FrechetInceptionDistance

from ganforge.data.digits import DigitsDataModule
from ganforge.metrics.evaluator import FidelityEvaluator
from ganforge.metrics.extractors import extractor_in_channels
from ganforge.metrics.extractors.digits import DigitsFeatures
from ganforge.metrics.protocol import to_extractor_input

ROOT = Path(__file__).resolve().parents[1]


def fake_images(real: torch.Tensor, n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(len(real), (n,), generator=g)
    return (real[idx] + 0.2 * torch.randn(real[idx].shape, generator=g)).clamp(-1, 1)


def batches(x: torch.Tensor, size: int):
    return [x[i : i + size] for i in range(0, len(x), size)]


def callback_fid(ev: FidelityEvaluator, fakes: list[torch.Tensor]) -> tuple[float, float]:
    start = time.perf_counter()
    ev.scores.reset_fake()
    for b in fakes:
        ev.update(b)
    fid = float(ev.scores.fid.compute())
    return time.perf_counter() - start, fid


def direct_fid(
    metric: FrechetInceptionDistance, fakes: list[torch.Tensor], in_channels: int
) -> tuple[float, float]:
    start = time.perf_counter()
    metric.reset()
    for b in fakes:
        metric.update(to_extractor_input(b, in_channels), real=False)
    fid = float(metric.compute())
    return time.perf_counter() - start, fid


def random_inception(tmp: Path):
    """torch-fidelity's InceptionV3 with random weights saved locally (no download): timing only."""
    import torch_fidelity.feature_extractor_inceptionv3 as fe

    from ganforge.metrics.extractors.inception import InceptionV3Features

    with (
        mock.patch.object(fe, "load_state_dict_from_url", lambda *a, **k: {}),
        mock.patch.object(fe.FeatureExtractorInceptionV3, "load_state_dict", lambda self, *a, **k: None),
    ):
        net = fe.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    torch.save(net.state_dict(), tmp / "inception-random.pth")
    return InceptionV3Features(weights=str(tmp / "inception-random.pth"))


def measure(name: str, extractor, n: int, batch_size: int, repeats: int, kid_subsets: int, tmp: Path) -> dict:
    dm = DigitsDataModule(batch_size=64)
    dm.setup("fit")
    n_real = None if name == "digits" else n
    cache = tmp / f"cache-{name}"
    kwargs = dict(
        num_fake=n, num_real=n_real, batch_size=batch_size, kid_subsets=kid_subsets, cache_dir=cache
    )
    # real statistics: cold (empty cache) against warm (read back)
    shutil.rmtree(cache, ignore_errors=True)
    ev = FidelityEvaluator(extractor, **kwargs)
    start = time.perf_counter()
    ev.prepare(dm, "cpu")
    cold = time.perf_counter() - start
    ev = FidelityEvaluator(extractor, **kwargs)
    start = time.perf_counter()
    ev.prepare(dm, "cpu")
    warm = time.perf_counter() - start

    in_channels = extractor_in_channels(extractor)
    direct = FrechetInceptionDistance(feature=extractor, reset_real_features=False)
    for b in batches(dm.real_samples(n_real), batch_size):
        direct.update(to_extractor_input(b, in_channels), real=True)
    fakes = batches(fake_images(dm.real_samples(), n), batch_size)
    ours, theirs, ratios = [], [], []
    for _ in range(repeats):
        t_ours, fid_ours = callback_fid(ev, fakes)
        t_theirs, fid_theirs = direct_fid(direct, fakes, in_channels)
        ours.append(t_ours)
        theirs.append(t_theirs)
        ratios.append(t_ours / t_theirs)
    start = time.perf_counter()
    ev.scores.reset_fake()
    for b in fakes:
        ev.update(b)
    ev.compute()
    full = time.perf_counter() - start
    return {
        "extractor": name,
        "n_fake": n,
        "n_real": ev.real.count,
        "batch_size": batch_size,
        "callback_fid_s_per_1k": 1000 * min(ours) / n,
        "torchmetrics_fid_s_per_1k": 1000 * min(theirs) / n,
        "ratio": min(ours) / min(theirs),
        "ratio_median": statistics.median(ratios),
        "fid_callback": fid_ours,
        "fid_torchmetrics": fid_theirs,
        "fid_rel_diff": abs(fid_ours - fid_theirs) / abs(fid_theirs),
        "full_eval_s_per_1k": 1000 * full / n,
        "kid_subsets": kid_subsets,
        "real_stats_cold_s": cold,
        "real_stats_warm_s": warm,
        "cache_saves_s": cold - warm,
    }


def table(rows: list[dict]) -> str:
    lines = [
        "| extractor | n fake | n real | callback FID s/1k | torchmetrics FID s/1k | ratio (median) "
        "| FID callback / torchmetrics | full FID+IS+KID s/1k | real stats cold s | cached s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['extractor']} | {r['n_fake']} | {r['n_real']} | {r['callback_fid_s_per_1k']:.3f} "
            f"| {r['torchmetrics_fid_s_per_1k']:.3f} | {r['ratio']:.3f} ({r['ratio_median']:.3f}) "
            f"| {r['fid_callback']:.6g} / {r['fid_torchmetrics']:.6g} | {r['full_eval_s_per_1k']:.3f} "
            f"| {r['real_stats_cold_s']:.3f} | {r['real_stats_warm_s']:.3f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="generated images for the digits extractor")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--kid-subsets", type=int, default=100)
    parser.add_argument("--inception-n", type=int, default=0, help="also Inception (random local weights)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "metrics_cost")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        rows = [
            measure("digits", DigitsFeatures(), args.n, args.batch_size, args.repeats, args.kid_subsets, tmp)
        ]
        if args.inception_n:
            rows.append(
                measure(
                    "inception-random-weights",
                    random_inception(tmp),
                    args.inception_n,
                    min(args.batch_size, 32),
                    args.repeats,
                    args.kid_subsets,
                    tmp,
                )
            )
    env = {
        "torch": torch.__version__,
        "torchmetrics": torchmetrics.__version__,
        "threads": torch.get_num_threads(),
        "cpu": platform.machine(),
    }
    md = table(rows)
    print(md)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps({"env": env, "rows": rows}, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(md + "\n\n" + json.dumps(env) + "\n")


if __name__ == "__main__":
    main()
