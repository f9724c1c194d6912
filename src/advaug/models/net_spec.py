"""A network's construction arguments as plain data, and the network rebuilt from them.

``SegmentationModule`` stores the spec of its network in its hyper-parameters, so that
``SegmentationModule.load_from_checkpoint(path)`` rebuilds the network without the run's Hydra
config: ``{"arch": "Unet", "encoder_name": "resnet18", ..., "encoder_weights": None}``, the
arguments of ``segmentation_models_pytorch.create_model``. The encoder weights are never fetched
again: the checkpoint holds the trained ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import segmentation_models_pytorch as smp
from torch import nn

from advaug.errors import ConfigError


def _plain(value: Any) -> Any:
    """``value`` with every mapping a dict and every list-like a list (OmegaConf containers,
    tuples): what a checkpoint loaded with ``weights_only=True`` can hold."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [_plain(v) for v in value]
    return value


def net_spec(net: nn.Module) -> dict[str, Any] | None:
    """The ``create_model`` arguments of an smp model (smp records them as ``net.config``); None
    for any other network, which then cannot be rebuilt from a checkpoint alone.

    smp's record keeps only JSON values: an OmegaConf list given by Hydra is replaced by smp's
    default, which is why ``conf/model/unet.yaml`` converts the net's arguments (``_convert_: all``);
    a spec that does not describe the network shows up as a shape mismatch when the weights load.
    """
    config = getattr(net, "config", None)
    if not isinstance(net, smp.base.SegmentationModel) or not isinstance(config, Mapping):
        return None
    return {"arch": type(net).__name__, **_plain(config), "encoder_weights": None}


def build_net(spec: Mapping[str, Any]) -> nn.Module:
    """The network a :func:`net_spec` describes (random weights: load a state_dict into it)."""
    spec = _plain(spec)
    if "arch" not in spec:
        raise ConfigError(
            f"model.net={spec}: a network spec needs 'arch' (an smp architecture such as Unet) and the "
            "arguments of segmentation_models_pytorch.create_model."
        )
    return smp.create_model(**spec)


__all__ = ["build_net", "net_spec"]
