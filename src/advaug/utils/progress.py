"""One progress bar for every long step outside Lightning's own loops (the robustness grid, pool
regeneration, GAN training, ``prepare_data.py``): tqdm, the library Lightning's bar uses, so the
bars look alike and show the rate and the time left.

A bar is drawn only on a terminal (stderr a TTY) and when not turned off: ``enabled=False`` from
the caller (e.g. ``trainer.enable_progress_bar=false``) or ``ADVAUG_PROGRESS=0`` in the
environment. Logs and CI output get none of tqdm's carriage-return lines.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Any, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")

ENV_SWITCH = "ADVAUG_PROGRESS"


def progress_enabled(enabled: bool | None = None, stream: Any = None) -> bool:
    """Whether a bar is drawn: not turned off (``enabled``, ``ADVAUG_PROGRESS=0``) and a terminal."""
    if enabled is False or os.environ.get(ENV_SWITCH, "").strip().lower() in ("0", "false", "no", "off"):
        return False
    stream = sys.stderr if stream is None else stream
    return bool(getattr(stream, "isatty", lambda: False)())


def progress(
    iterable: Iterable[T] | None = None,
    *,
    total: int | None = None,
    desc: str = "",
    unit: str = "it",
    enabled: bool | None = None,
) -> tqdm:
    """A tqdm bar over ``iterable`` (or one to ``update()`` by hand up to ``total``), silent when
    :func:`progress_enabled` says so. Use it as a context manager so that it always closes."""
    return tqdm(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        disable=not progress_enabled(enabled),
        leave=False,
        dynamic_ncols=True,
        file=sys.stderr,
    )
