"""DataLoaders and the multiprocessing context of their workers."""

from __future__ import annotations

import multiprocessing
from multiprocessing.context import BaseContext

from torch.utils.data import DataLoader, Dataset, Sampler

_STANDARD = ("fork", "spawn", "forkserver")


def worker_context(num_workers: int) -> BaseContext | None:
    """``multiprocessing_context`` for a DataLoader with ``num_workers`` workers.

    None (the DataLoader's default) in an ordinary process or with no workers. Inside a
    ``hydra/launcher=joblib`` job the process-wide start method is joblib's ``loky``, whose
    process class cannot start DataLoader workers (``'Process' object has no attribute 'env'``):
    there the platform's default start method is named explicitly.
    """
    method = multiprocessing.get_start_method(allow_none=True)
    if num_workers <= 0 or method is None or method in _STANDARD:
        return None
    return multiprocessing.get_context(multiprocessing.get_all_start_methods()[0])


def make_loader(
    dataset: Dataset,
    batch_size: int,
    num_workers: int,
    pin_memory: bool,
    shuffle: bool = False,
    sampler: Sampler | None = None,
    drop_last: bool = False,
) -> DataLoader:
    """A DataLoader as every split uses one: workers started in a context that works in a
    joblib job, not kept between epochs (the train set changes per epoch)."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        sampler=sampler,
        num_workers=num_workers,
        multiprocessing_context=worker_context(num_workers),
        pin_memory=pin_memory,
        persistent_workers=False,
        drop_last=drop_last,
    )
