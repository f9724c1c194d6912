"""src/export.py: the default UNet of a tiny run exported to ONNX and TorchScript reproduces
PyTorch's logits on real Kvasir-SEG and ISBI 2012 images (read in place)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from conftest import SHARED, compose_config
from test_predict import tiny_run

from advaug.deploy import load_run
from advaug.deploy.export import export_model, plain_net
from advaug.errors import ConfigError

# float32 through a different runtime: measured max |diff| 4e-6 on logits of magnitude ~2.5
ATOL, RTOL = 1e-4, 1e-4
REAL = [SHARED / "kvasir-seg" / "images", SHARED / "isbi2012-em" / "images"]


def real_images(n: int = 2) -> list[Path]:
    found = [p for folder in REAL if folder.is_dir() for p in sorted(folder.iterdir())[:n]]
    if not found:
        pytest.skip("no shared datasets")
    return found


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    # the default network (decoder_channels of conf/model/unet.yaml), at 32 px for speed
    return tiny_run(tmp_path_factory.mktemp("export"), "model.net.encoder_depth=5",
                    "model.net.decoder_channels=[256,128,64,32,16]")


def export(run_dir: Path, tmp_path: Path, fmt: str) -> dict:
    cfg = compose_config([f"run_dir={run_dir}", f"format={fmt}", f"output={tmp_path / fmt}"], tmp_path,
                         config_name="export")  # fmt: skip
    return export_model(cfg)


def reference(run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    run = load_run(run_dir)
    x = torch.stack([run.preprocessing.load(p) for p in real_images()])
    with torch.no_grad():
        return x.numpy(), run.model(x).numpy()


def real_at(run_dir: Path, height: int, width: int) -> torch.Tensor:
    """The real images at another size than the run's (the run's loader, then resized)."""
    x = torch.stack([load_run(run_dir).preprocessing.load(p) for p in real_images()])
    return torch.nn.functional.interpolate(x, size=(height, width), mode="bilinear", align_corners=False)


def test_onnx_runtime_reproduces_the_logits(run_dir, tmp_path):
    record = export(run_dir, tmp_path, "onnx")
    path = tmp_path / "onnx" / record["model_file"]
    written = json.loads((tmp_path / "onnx" / "preprocessing.json").read_text())
    assert written == record and written["input"]["shape"] == ["batch", 3, 32, 32]
    assert written["classes"] == ["background", "foreground"] and written["input"]["mean"] == [0, 0, 0]
    x, logits = reference(run_dir)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"image": x})
    assert got.shape == logits.shape == (len(x), 2, 32, 32)
    np.testing.assert_allclose(got, logits, atol=ATOL, rtol=RTOL)
    (one,) = session.run(None, {"image": x[:1]})  # the batch size is free
    np.testing.assert_allclose(one, logits[:1], atol=ATOL, rtol=RTOL)
    assert written["input"]["size_multiple"] == 32
    wide = real_at(run_dir, 64, 96)  # and so are height and width, as multiples of 32
    (got,) = session.run(None, {"image": wide.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(got, load_run(run_dir).model(wide).numpy(), atol=ATOL, rtol=RTOL)
    assert got.shape == (len(wide), 2, 64, 96)


def test_torchscript_reproduces_the_logits(run_dir, tmp_path):
    record = export(run_dir, tmp_path, "torchscript")
    traced = torch.jit.load(str(tmp_path / "torchscript" / record["model_file"]))
    x, logits = reference(run_dir)
    with torch.no_grad():
        np.testing.assert_allclose(traced(torch.from_numpy(x)).numpy(), logits, atol=ATOL, rtol=RTOL)
        wide = real_at(run_dir, 64, 96)  # the trace holds no fixed size either
        np.testing.assert_allclose(traced(wide).numpy(), load_run(run_dir).model(wide).numpy(), atol=ATOL, rtol=RTOL)


def test_twin_norm_exports_the_main_only_net(tmp_path):
    run = load_run(tiny_run(tmp_path, "model.aux_norm=affine"))
    net = plain_net(run)
    assert not any("aux" in k for k in net.state_dict())
    assert set(net.state_dict()) == {k for k in run.model.net.state_dict() if ".aux." not in k}


def test_an_unknown_format_is_refused(run_dir, tmp_path):
    with pytest.raises(ConfigError, match="format=tflite: choose onnx or torchscript"):
        export(run_dir, tmp_path, "tflite")
