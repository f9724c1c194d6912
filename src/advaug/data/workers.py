"""The multiprocessing context of DataLoader workers."""

from __future__ import annotations

import multiprocessing
from multiprocessing.context import BaseContext

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
