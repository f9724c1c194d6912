"""Using a trained run: its model and preprocessing without Hydra (``run_model.py``), prediction
on a folder of images (``predict.py``, ``src/predict.py``) and export to ONNX / TorchScript
(``export.py``, ``src/export.py``)."""

from advaug.deploy.preprocessing import Preprocessing
from advaug.deploy.run_model import RunModel, load_run, resolve_checkpoint

__all__ = ["Preprocessing", "RunModel", "load_run", "resolve_checkpoint"]
