"""Export a trained run's network as ONNX or TorchScript, with preprocessing.json.
(``advaug-export`` after ``pip install -e .``: the same command, from any folder.)

Examples::

    python src/export.py ckpt_path=logs/train/runs/<time>/checkpoints/best.ckpt format=onnx
    python src/export.py run_dir=logs/train/runs/<time> format=torchscript output=exported/
"""

from advaug.run.commands import export

if __name__ == "__main__":
    export()
