"""``ResumeState``: what a resumed run needs beyond Lightning's own restore to match an
uninterrupted run exactly.

1. The global random state (torch, numpy, Python ``random``). It decides the shuffle order of the
   next epoch, random transforms and anything else drawn from the global generators; Lightning
   does not checkpoint it, so without this a resumed run continues with the seed-time state.
2. The ModelCheckpoint's record of the best checkpoint. A run resumed into a *new* folder would
   otherwise forget the best score so far (Lightning reloads it only when ``dirpath`` is
   unchanged) and could test a worse "best" model; the best file is copied into the new folder.

The states are saved with the checkpoint; the checkpoint should be taken at the end of the
training epoch (``save_on_train_epoch_end: true``, after every other callback's epoch-end work).
"""

from __future__ import annotations

import logging
import random
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch

log = logging.getLogger(__name__)

_PATH_KEYS = ("best_model_path", "kth_best_model_path", "last_model_path")


def collect_rng_state() -> dict[str, Any]:
    """Global RNG states as tensors and plain Python values (loadable with ``weights_only=True``)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, py_state, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "python": {"version": version, "state": list(py_state), "gauss": gauss},
    }


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`collect_rng_state`."""
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state(
        (n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"])
    )
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))


def relocate_checkpoint_state(state: dict[str, Any], new_dir: str | Path) -> dict[str, Any]:
    """A ModelCheckpoint state from another folder, re-pointed at ``new_dir`` (best file copied)."""
    old_dir, new_dir = Path(state["dirpath"]), Path(new_dir)
    new_dir.mkdir(parents=True, exist_ok=True)

    def move(path: str) -> str:
        if not path or Path(path).parent != old_dir:
            return path
        target = new_dir / Path(path).name
        if Path(path).is_file() and not target.exists():
            shutil.copy2(path, target)
        return str(target)

    state = dict(state, dirpath=str(new_dir))
    for key in _PATH_KEYS:
        if key in state:
            state[key] = move(state[key])
    if "best_k_models" in state:
        state["best_k_models"] = {move(k): v for k, v in state["best_k_models"].items()}
    return state


@contextmanager
def rng_state_kept() -> Iterator[None]:
    """Whatever the block draws from the global generators, they are as before afterwards
    (a pool remade on resume must not move the RNG state the checkpoint restored)."""
    state = collect_rng_state()
    try:
        yield
    finally:
        restore_rng_state(state)


class ResumeState(L.Callback):
    """Checkpoints the global RNG state and carries the best-checkpoint record across folders."""

    def state_dict(self) -> dict[str, Any]:
        return {"rng": collect_rng_state()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if "rng" in state_dict:
            restore_rng_state(state_dict["rng"])

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        # Runs for every callback before any callback's load_state_dict: rewrite the
        # ModelCheckpoint states there so that they load as if saved in this run's folder.
        states = checkpoint.get("callbacks") or {}
        for cb in trainer.checkpoint_callbacks:
            state = states.get(cb.state_key)
            if cb.dirpath and state and state.get("dirpath") and Path(state["dirpath"]) != Path(cb.dirpath):
                log.info("resuming into %s (checkpoints were in %s)", cb.dirpath, state["dirpath"])
                states[cb.state_key] = relocate_checkpoint_state(state, cb.dirpath)
