"""Export the EMA generator: ``python src/export.py ckpt_path=.../last.ckpt format=onnx|torchscript``."""

import hydra
from omegaconf import DictConfig

from ganforge.export import export_files


@hydra.main(version_base="1.3", config_path="../conf", config_name="export")
def main(cfg: DictConfig) -> None:
    path, diff = export_files(cfg)
    print(path if diff is None else f"{path} (max difference from PyTorch {diff:.2g})")


if __name__ == "__main__":
    main()
