"""Exceptions whose message names the offending file or key and says how to fix it."""

from __future__ import annotations

from collections.abc import Iterator


class AdvaugError(Exception):
    """Base class for errors a user can fix; entry scripts print them without a traceback."""


class DatasetError(AdvaugError, ValueError):
    """A dataset folder, file or split is unusable."""


class ConfigError(AdvaugError, ValueError):
    """A configuration value is out of range or inconsistent."""


class TrainingDivergedError(AdvaugError, RuntimeError):
    """The loss became NaN or infinite."""


def exception_chain(exc: BaseException | None) -> Iterator[BaseException]:
    """``exc`` and the errors behind it (``__cause__``, else ``__context__``), each once."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__
