"""Fill a hole from a trained GAN: ``python src/repair.py ckpt_path=... image=x.png box=[x,y,w,h]``."""

import hydra
from omegaconf import DictConfig

from ganforge.repair import repair_files


@hydra.main(version_base="1.3", config_path="../conf", config_name="repair")
def main(cfg: DictConfig) -> float:
    files, result = repair_files(cfg)
    for path in files:
        print(path)
    return result.loss


if __name__ == "__main__":
    main()
