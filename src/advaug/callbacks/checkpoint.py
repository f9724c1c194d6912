"""``RunCheckpoint``: Lightning's ``ModelCheckpoint`` whose best files hold the weights only.

A full Lightning checkpoint carries the optimizer state (Adam: twice the weights), every
callback's state and the DataModule's extra-sample pool as float32 images. Only ``last.ckpt`` is
ever resumed from (``ckpt_path=last``, ``resume_dir``); the best files are what test, robustness,
``src/evaluate.py`` and anyone the model is shared with load, and they need the weights alone.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint

from advaug.errors import ConfigError
from advaug.utils import lightning_compat as compat


class RunCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` (same arguments) plus ``best_weights_only``.

    ``best_weights_only=True`` (default): the top-k files are written weights-only (state_dict,
    hyper-parameters, epoch/step) and without the DataModule state (the pool); ``last.ckpt`` stays
    a full checkpoint for an exact resume. ``False`` writes every file in full, as Lightning does.
    ``keep_last=False``: :meth:`run_completed` deletes ``last.ckpt`` (3× the best file with Adam,
    plus the pool), which only a resume or further training needs.
    """

    def __init__(
        self, *args: Any, best_weights_only: bool = True, keep_last: bool = True, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.keep_last = bool(keep_last)
        if best_weights_only and self.save_last == "link":
            raise ConfigError(
                "save_last=link makes last.ckpt a link to the best file, which holds the weights only "
                "under best_weights_only=true, so a run could not resume from it: use save_last=true, "
                "or best_weights_only=false."
            )
        self.best_weights_only = bool(best_weights_only)

    @property
    def state_key(self) -> str:
        # Lightning's own key: checkpoints written with either class resume with the other
        return super().state_key.replace(type(self).__qualname__, ModelCheckpoint.__qualname__, 1)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        # Lightning (2.6) writes last.ckpt only in epochs that also wrote a top-k file, i.e. when
        # the monitored score improved; a resume must start from the epoch that just ended
        if self.save_last:
            compat.save_last_checkpoint_now(self, trainer)

    def _save_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        # compat.CHECKPOINT_SAVE_HOOK: every file is written through it. Lightning's
        # _save_last_checkpoint sets last_model_path to the file before it calls this
        lean = self.best_weights_only and not self.save_weights_only and filepath != self.last_model_path
        if not lean:
            compat.save_checkpoint_file(self, trainer, filepath)
            return
        leave_out = getattr(trainer.datamodule, "state_left_out", None)
        self.save_weights_only = True
        try:
            with leave_out() if leave_out is not None else nullcontext():
                compat.save_checkpoint_file(self, trainer, filepath)
        finally:
            self.save_weights_only = False

    def run_completed(self, trainer: L.Trainer) -> None:
        """The run's results are written: delete ``last.ckpt`` unless ``keep_last``."""
        last = self.last_model_path
        if self.keep_last or not last or last == self.best_model_path:
            return
        compat.remove_checkpoint_file(self, trainer, last)  # the strategy's: rank 0 removes the file
        self.last_model_path = ""
