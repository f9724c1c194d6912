"""Shared behaviour of the entry scripts: user-fixable errors print one line, not a traceback."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

from advaug.errors import AdvaugError

log = logging.getLogger("advaug")


def run_entry(fn: Callable[[Any], Any], cfg: Any) -> Any:
    """Call ``fn(cfg)``; on an :class:`AdvaugError` log its message and exit with status 2."""
    try:
        return fn(cfg)
    except AdvaugError as exc:
        log.error("%s: %s", type(exc).__name__, exc)
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
