"""Train a GAN: ``python src/train.py model=dcgan loss=hinge trainer.devices=4``."""

import hydra
from omegaconf import DictConfig

from ganforge.pipeline import metric_value, train


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    metrics, _ = train(cfg)
    # the value Hydra's Optuna sweeper minimises
    return metric_value(metrics, cfg.get("optimized_metric"))


if __name__ == "__main__":
    main()
