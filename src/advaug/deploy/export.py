"""``src/export.py``: a run's network as ONNX or TorchScript, plus ``preprocessing.json``.

The exported graph is the plain network (twin BatchNorms of ``model.aux_norm`` turned into
their main layers, :func:`advaug.models.twin_norm.main_only`) in eval mode: input float
(N, 3, H, W) in [0, 1], output logits (N, C, H, W). The batch size is free, and so are H and W
as multiples of the encoder's output stride (32 for smp's UNet): the run's own preprocessing
resizes to S x S, a deployment may feed other sizes the network accepts.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from torch import nn

from advaug.deploy.run_model import RunModel, load_run, resolve_checkpoint
from advaug.errors import ConfigError
from advaug.models.twin_norm import main_only
from advaug.utils.io import atomic_path, atomic_write_json

log = logging.getLogger(__name__)
FORMATS = {"onnx": "model.onnx", "torchscript": "model.pt"}
PREPROCESSING_FILE = "preprocessing.json"
OPSET = 18


def plain_net(run: RunModel) -> nn.Module:
    """The network to export: the main layers only, eval mode, on the CPU."""
    return main_only(run.model.net).eval().cpu()


def size_multiple(net: nn.Module) -> int:
    """What H and W must be divisible by: the smp encoder's output stride (1 for other networks)."""
    encoder = getattr(net, "encoder", None)
    return int(getattr(encoder, "output_stride", 1) or 1)


def export_onnx(net: nn.Module, example: torch.Tensor, path: Path) -> Path:
    """ONNX by ``torch.onnx.export``'s dynamo exporter (onnxscript); batch, height and width free
    (height and width as multiples of :func:`size_multiple`)."""
    import onnx  # noqa: F401  (the `export` extra: a clear ImportError before a long export)

    stride = size_multiple(net)
    batch = torch.export.Dim("batch", min=1, max=4096)
    blocks = 4096 // stride  # up to 4096 px a side
    height = stride * torch.export.Dim("h_blocks", min=1, max=blocks)
    width = stride * torch.export.Dim("w_blocks", min=1, max=blocks)
    with atomic_path(path) as tmp:
        program = torch.onnx.export(
            net,
            (example,),
            input_names=["image"],
            output_names=["logits"],
            dynamic_shapes=({0: batch, 2: height, 3: width},),
            opset_version=OPSET,
            dynamo=True,
            verbose=False,
        )
        program.save(str(tmp))
    return path


def export_torchscript(net: nn.Module, example: torch.Tensor, path: Path) -> Path:
    """TorchScript by tracing (smp networks do not script); deprecated by torch, still loadable."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        traced = torch.jit.trace(net, example)
        with atomic_path(path) as tmp:
            traced.save(str(tmp))
    return path


def export_model(cfg: DictConfig) -> dict[str, Any]:
    """Write ``model.onnx`` or ``model.pt`` and ``preprocessing.json`` into ``cfg.output`` (default:
    this command's run folder); returns the JSON written."""
    fmt = str(cfg.get("format", "onnx")).lower()
    if fmt not in FORMATS:
        raise ConfigError(f"format={fmt}: choose {' or '.join(FORMATS)}.")
    run = load_run(resolve_checkpoint(cfg.get("ckpt_path"), cfg.get("run_dir")), cfg.get("run_config"))
    out = Path(cfg.get("output") or cfg.paths.output_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    size = run.preprocessing.image_size
    net = plain_net(run)
    # a trace at one block a side (the bottleneck 1x1) would pin height and width to that size
    side = max(size, 2 * size_multiple(net))
    example = torch.rand(2, 3, side, side, generator=torch.Generator().manual_seed(0))
    path = out / FORMATS[fmt]
    (export_onnx if fmt == "onnx" else export_torchscript)(net, example, path)
    record = {
        "format": fmt,
        "model_file": path.name,
        "ckpt_path": str(run.ckpt_path),
        "run_config": str(run.config_path),
        **({"opset": OPSET, "input_name": "image", "output_name": "logits"} if fmt == "onnx" else {}),
        **run.preprocessing.describe(),
    }
    record["input"]["size_multiple"] = size_multiple(net)
    record["input"]["free_dims"] = (
        f"batch; height and width any multiple of {size_multiple(net)} (trained at {size}x{size})"
    )
    atomic_write_json(out / PREPROCESSING_FILE, record)
    log.info("exported %s to %s", fmt, path)
    print(f"exported {fmt}: {path} (+ {out / PREPROCESSING_FILE})")
    return record
