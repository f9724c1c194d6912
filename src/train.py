"""Train a segmentation model: ``python src/train.py [group=choice ...] [key=value ...]``.

Examples::

    python src/train.py                                # UNet on the embedded synthetic phantoms
    python src/train.py -m seed=0,1,2                  # a Hydra sweep
    python src/train.py dataset=folder dataset.root=/path/to/data

The value returned to Hydra's sweeper is the best validation mean IoU (NaN for a failed job), so a
sweeper that optimises it selects on validation, never on the test split.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run without installing the package

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from advaug.cli import check_choices, run_entry  # noqa: E402
from advaug.training import objective, train  # noqa: E402
from advaug.utils.config import register_resolvers  # noqa: E402

register_resolvers()


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float:
    # the sweeper's objective: the best validation mean IoU (NaN for a failed job), never a test score
    return objective(run_entry(train, cfg, output_dir=cfg.paths.output_dir))


if __name__ == "__main__":
    check_choices(sys.argv[1:], Path(__file__).resolve().parents[1] / "conf")  # one-line error
    main()
