"""Building the model from its config, with pretrained encoder weights that may need a download."""

from __future__ import annotations

import socket
import urllib.error

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from advaug.errors import ConfigError, exception_chain


def _is_download_error(exc: BaseException) -> bool:
    """Whether ``exc`` or an error behind it is a failed download (no network, no cached file)."""
    return any(
        isinstance(e, (ConnectionError, socket.gaierror, urllib.error.URLError))
        or type(e).__name__ in ("LocalEntryNotFoundError", "ConnectError", "ConnectTimeout")
        for e in exception_chain(exc)
    )


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
