"""Score a checkpoint on a test split, clean and under attack (paper Table 2), plus the Fig. 3-4 grid.

Examples::

    python src/evaluate.py ckpt_path=logs/train/runs/<time>/checkpoints/best.ckpt
    python src/evaluate.py ckpt_path=<ckpt> dataset=colon robustness.methods=[fgsm,pgd] robustness.pgd_steps=20

Writes robustness.json, robustness.md and figures/samples.png into logs/evaluate/runs/<time>/.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run without installing the package

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from advaug.cli import check_choices, run_entry  # noqa: E402
from advaug.evaluation import evaluate_checkpoint  # noqa: E402
from advaug.utils.config import register_resolvers  # noqa: E402

register_resolvers()


@hydra.main(version_base="1.3", config_path="../conf", config_name="evaluate")
def main(cfg: DictConfig) -> float:
    rows = run_entry(evaluate_checkpoint, cfg)
    return rows[0]["miou"]


if __name__ == "__main__":
    check_choices(sys.argv[1:], Path(__file__).resolve().parents[1] / "conf")  # one-line error
    main()
