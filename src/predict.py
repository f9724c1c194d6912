"""Predict masks for a folder of images with a trained run's model.
(``advaug-predict`` after ``pip install -e .``: the same command, from any folder.)

Examples::

    python src/predict.py ckpt_path=logs/train/runs/<time>/checkpoints/best.ckpt input=<folder> output=<folder>
    python src/predict.py run_dir=logs/train/runs/<time> input=<folder> overlays=true probabilities=true

Writes <output>/masks/<id>.png at each image's original size (0/255 when binary, else class ids),
optionally probabilities/ and overlays/, and predict.json (the model, its preprocessing).
"""

from advaug.run.commands import predict

if __name__ == "__main__":
    predict()
