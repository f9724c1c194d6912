"""Validate a dataset folder before training: ``python src/check_data.py dataset=<choice> [dataset.root=...]``.

Decodes every image and mask with the training rules and prints pairs per split, image sizes and
modes, and the mask class histogram; a problem is one line naming the file and the fix (exit 2).
Writes nothing (except the embedded synthetic set on first use).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run without installing the package

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from advaug.cli import check_choices, run_entry  # noqa: E402
from advaug.data.check import check_dataset_config, format_summary  # noqa: E402
from advaug.utils.config import register_resolvers  # noqa: E402

register_resolvers()


@hydra.main(version_base="1.3", config_path="../conf", config_name="check_data")
def main(cfg: DictConfig) -> None:
    summary = run_entry(lambda c: check_dataset_config(c.dataset), cfg)
    print(format_summary(summary))


if __name__ == "__main__":
    check_choices(sys.argv[1:], Path(__file__).resolve().parents[1] / "conf")  # one-line error
    main()
