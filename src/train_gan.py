"""Train the GAN baseline of ``aug=gan`` once per dataset split and seed; it is cached where
``python src/train.py aug=gan`` with the same dataset and seed finds it.

Examples::

    python src/train_gan.py                               # on the embedded synthetic phantoms
    python src/train_gan.py dataset=isbi2012 gan.steps=5000
    python src/train_gan.py -m seed=0,1,2                 # one generator per seed of a later sweep
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run without installing the package

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from advaug.cli import check_choices, run_entry  # noqa: E402
from advaug.gan.training import train_gan  # noqa: E402
from advaug.utils.config import register_resolvers  # noqa: E402

register_resolvers()


@hydra.main(version_base="1.3", config_path="../conf", config_name="train_gan")
def main(cfg: DictConfig) -> None:
    run_entry(train_gan, cfg)


if __name__ == "__main__":
    check_choices(sys.argv[1:], Path(__file__).resolve().parents[1] / "conf")  # one-line error
    main()
