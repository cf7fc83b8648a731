"""Metrics of a checkpoint: ``python src/eval.py ckpt_path=outputs/.../checkpoints/last.ckpt``."""

import hydra
from omegaconf import DictConfig

from ganforge.evaluate import evaluate


@hydra.main(version_base="1.3", config_path="../conf", config_name="eval")
def main(cfg: DictConfig) -> float:
    return evaluate(cfg)["results"]["fid"]


if __name__ == "__main__":
    main()
