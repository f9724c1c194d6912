"""Robustness evaluation (paper Table 2), shared by ``train(cfg)`` and ``src/evaluate.py``."""

from advaug.evaluation.robustness import evaluate_robustness, robustness_markdown, write_robustness
from advaug.evaluation.runner import evaluate_checkpoint, load_weights, run_robustness

__all__ = [
    "evaluate_checkpoint",
    "evaluate_robustness",
    "load_weights",
    "robustness_markdown",
    "run_robustness",
    "write_robustness",
]
