"""Train a segmentation model: ``python src/train.py [group=choice ...] [key=value ...]``.
(``advaug-train`` after ``pip install -e .``: the same command, from any folder.)

Examples::

    python src/train.py                                # UNet on the embedded synthetic phantoms
    python src/train.py -m seed=0,1,2                  # a Hydra sweep
    python src/train.py dataset=folder dataset.root=/path/to/data

The value returned to Hydra's sweeper is the best validation mean IoU (-inf for a failed job), so a
sweeper that optimises it selects on validation, never on the test split.
"""

from advaug.run.commands import train

if __name__ == "__main__":
    train()
