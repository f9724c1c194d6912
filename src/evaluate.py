"""Score a checkpoint on a test split, clean and under attack (paper Table 2), plus the Fig. 3-4 grid.
(``advaug-evaluate`` after ``pip install -e .``: the same command, from any folder.)

Examples::

    python src/evaluate.py ckpt_path=logs/train/runs/<time>/checkpoints/best.ckpt
    python src/evaluate.py ckpt_path=<ckpt> dataset=colon robustness.methods=[fgsm,pgd] robustness.pgd_steps=20

Writes robustness.json, robustness.md and figures/samples.png into logs/evaluate/runs/<time>/.
"""

from advaug.run.commands import evaluate

if __name__ == "__main__":
    evaluate()
