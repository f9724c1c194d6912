"""Building the model from its config, with pretrained encoder weights that may need a download."""

from __future__ import annotations

import socket
import urllib.error

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from advaug.errors import ConfigError


def _is_download_error(exc: BaseException | None) -> bool:
    """Whether ``exc`` or an error in its chain is a failed download (no network, no cached file)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, (ConnectionError, socket.gaierror, urllib.error.URLError)) or type(
            exc
        ).__name__ in ("LocalEntryNotFoundError", "ConnectError", "ConnectTimeout"):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def instantiate_model(model_cfg: DictConfig) -> L.LightningModule:
    """``instantiate(cfg.model)``; pretrained encoder weights that cannot be downloaded (offline)
    are one :class:`ConfigError` naming the fix, not Hydra's multi-line traceback."""
    try:
        return instantiate(model_cfg)
    except Exception as exc:
        weights = OmegaConf.select(model_cfg, "net.encoder_weights")
        if weights is None or not _is_download_error(exc):
            raise
        raise ConfigError(
            f"model.net.encoder_weights={weights}: the pretrained encoder weights could not be downloaded "
            "(no internet). They are fetched once and then cached (huggingface_hub / torch hub cache); "
            "offline, train from scratch with model.net.encoder_weights=null."
        ) from None
