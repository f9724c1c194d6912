"""``SplitsRecord``: the run's train/val/test ids written when training starts, checked on resume."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L

from advaug.errors import DatasetError
from advaug.run.folder import splits_record_of
from advaug.utils.io import atomic_write_json


class SplitsRecord(L.Callback):
    """Write ``trainer.datamodule.ids`` (``<root>/splits.json``'s format) to ``path`` when ``fit`` starts.

    At the start, not the end: a seeded split changes when files are added to the folder, and a run
    killed mid-training must already say which images it trained on. A resumed run whose split is
    no longer the recorded one is refused (:class:`DatasetError`): it would go on training on images
    that were its test or validation images. Rank 0 only; a DataModule without ``ids`` writes nothing.
    """

    def __init__(self, path: str | Path, resume_from: str | Path | None = None) -> None:
        # the checkpoint this run resumes (Lightning sets trainer.ckpt_path only after setup)
        self.path, self.resume_from = Path(path), Path(resume_from) if resume_from else None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        # after the DataModule's setup (the ids), before the checkpoint is restored (a resume into a
        # new folder copies its best file there) and before anything trains
        ids = getattr(trainer.datamodule, "ids", None)
        if stage != "fit" or not ids:
            return
        record = splits_record_of(self.resume_from) if self.resume_from is not None else None
        if record is not None:  # resuming: the split that the checkpoint's run recorded
            check_same_split(ids, record, trainer.datamodule, self.resume_from)
        if trainer.is_global_zero:
            atomic_write_json(self.path, ids)


def check_same_split(ids: dict[str, list[str]], record: Path, datamodule: object, ckpt: Path) -> None:
    """Raise :class:`DatasetError` when ``ids`` differ from the split recorded in ``record``."""
    try:
        recorded = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # unreadable (a hand edit): nothing to compare with
    if not isinstance(recorded, dict):
        return
    changed = sorted(
        k for k in set(recorded) | set(ids) if sorted(recorded.get(k) or []) != sorted(ids.get(k) or [])
    )
    if not changed:
        return
    root = getattr(datamodule, "root", None)
    target = f"{root}/splits.json" if root is not None else "<dataset root>/splits.json"
    raise DatasetError(
        f"resuming {ckpt}: the {'/'.join(changed)} split is no longer the one that run started with "
        f"({record}); the dataset folder or the split settings changed since, and training would go on "
        f"with other images. Copy {record} to {target} and resume again (resume_dir={record.parent}), "
        "or start a new run."
    )
