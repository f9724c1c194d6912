"""Validate a dataset folder before training: ``python src/check_data.py dataset=<choice> [dataset.root=...]``.
(``advaug-check-data`` after ``pip install -e .``: the same command, from any folder.)

Decodes every image and mask with the training rules and prints pairs per split, image sizes and
modes, and the mask class histogram; a problem is one line naming the file and the fix (exit 2).
Writes nothing (except the embedded synthetic set on first use).
"""

from advaug.run.commands import check_data

if __name__ == "__main__":
    check_data()
