"""Pictures from a checkpoint: ``python src/sample.py ckpt_path=.../last.ckpt [mode=interpolate]``."""

import hydra
from omegaconf import DictConfig

from ganforge.sampling import write_samples


@hydra.main(version_base="1.3", config_path="../conf", config_name="sample")
def main(cfg: DictConfig) -> None:
    for path in write_samples(cfg)[:5]:
        print(path)


if __name__ == "__main__":
    main()
