"""Entry-point failure handling: user-fixable errors print one line (exit status 2), not a traceback;
a run folder records its failure; a sweep job fails alone. Also the override checks run before Hydra."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from advaug.errors import AdvaugError, ConfigError, exception_chain
from advaug.run.distributed import in_multirun, is_rank_zero
from advaug.run.folder import is_completed, read_status, record_failure
from advaug.run.resume import check_same_run

log = logging.getLogger("advaug")


def user_error(exc: BaseException | None) -> AdvaugError | None:
    """The :class:`AdvaugError` behind ``exc``, if any: Hydra wraps errors raised in a ``_target_``
    constructor in ``InstantiationException``, which would otherwise hide the one-line message."""
    return next((e for e in exception_chain(exc) if isinstance(e, AdvaugError)), None)


def run_entry(fn: Callable[[Any], Any], cfg: Any, output_dir: str | Path | None = None) -> Any:
    """Call ``fn(cfg)``; on an :class:`AdvaugError` log its message and exit with status 2.

    With ``output_dir`` (the run folder of a training-like entry) a failure is also recorded there
    as ``metrics.json`` ``{"status": "failed", "error": ...}`` (atomically), and inside a Hydra
    sweep a failing job returns None instead of raising, so the other jobs run and keep their
    results (``advaug.run.sweep.SweepSummary`` reports it); a sweep job whose folder already holds a
    completed run of the same configuration is skipped, one of another configuration raises
    :class:`ConfigError` (see :func:`check_same_run`).
    """
    multirun = in_multirun()
    output_dir = output_dir if is_rank_zero() else None  # one writer under DDP
    if output_dir is not None and multirun and is_completed(output_dir):
        try:
            check_same_run(output_dir, cfg)
        except ConfigError as exc:
            # raised, not recorded: the folder's metrics.json belongs to the earlier run; Hydra
            # runs the other jobs and then reports this one failed
            log.error("%s: %s", type(exc).__name__, exc)
            raise
        log.info("%s already holds a completed run: skipped", output_dir)
        return read_status(output_dir)
    try:
        try:
            return fn(cfg)
        except Exception as exc:
            found = user_error(exc)
            if found is None or found is exc:
                raise
            raise found from None
    except AdvaugError as exc:
        if output_dir is not None:
            record_failure(output_dir, exc)
        log.error("%s: %s", type(exc).__name__, exc)
        print(f"error: {exc}", file=sys.stderr)
        if multirun:
            if output_dir is not None:
                return None  # recorded; the sweep goes on
            raise  # Hydra marks only this sweep job failed, runs the others, and reports it at the end
        raise SystemExit(2) from None
    except Exception as exc:
        if output_dir is None:
            raise
        record_failure(output_dir, exc)
        if multirun:  # an unexpected error: full traceback into the job's log, then the next job
            log.exception("sweep job failed")
            print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
            return None
        raise
    except BaseException as exc:  # KeyboardInterrupt, SystemExit from Lightning's Ctrl-C handler
        if output_dir is not None:
            cause = exc.__cause__  # e.g. a DDP collective that failed after the SIGTERM
            extra = {"cause": f"{type(cause).__name__}: {cause}"} if cause is not None else {}
            record_failure(output_dir, exc, status="interrupted", **extra)
        raise


# overrides that take a file or folder path: sweep job folders hold '=' (and ',') in their names
PATH_KEYS = (
    "ckpt_path", "resume_dir", "run_dir", "input", "output", "dataset.root", "hydra.run.dir", "hydra.sweep.dir"
)


def check_path_quoting(argv: list[str]) -> None:
    """Refuse an unquoted path override whose value Hydra's grammar would misread (a sweep job
    folder such as ``.../0_aug=none,seed=0/...``), in one line naming the quoted form (exit 2)."""
    for arg in argv:
        key, sep, value = arg.partition("=")
        key = key.lstrip("+~")
        if not sep or not (key in PATH_KEYS or key.startswith("paths.")) or value[:1] in ("'", '"'):
            continue
        if "=" in value:  # never valid unquoted (a ',' may be a sweep list, '(' a sweep function)
            print(
                f"error: {key}={value}: the path holds '=' (as sweep job folders do), which Hydra "
                f"reads as override syntax; quote it: \"{key}='{value}'\"",
                file=sys.stderr,
            )
            raise SystemExit(2)


def check_choices(argv: list[str], conf_dir: str | Path) -> None:
    """Refuse ``group=choice`` overrides naming no ``conf/<group>/<choice>.yaml`` in one line (exit 2).

    Hydra refuses them too, but with a multi-line message; this runs before ``@hydra.main``.
    Sweep lists (``aug=fgsm,foo``) are checked item by item; other override syntax is left to Hydra.
    """
    check_path_quoting(argv)
    conf_dir = Path(conf_dir)
    for arg in argv:
        key, sep, value = arg.partition("=")
        key = key.lstrip("+")
        if not sep or "." in key or "/" in key or not (conf_dir / key).is_dir() or "(" in value:
            continue
        options = sorted(p.stem for p in (conf_dir / key).glob("*.yaml") if not p.stem.startswith("_"))
        for choice in value.split(","):
            if choice and choice != "null" and not (conf_dir / key / f"{choice}.yaml").is_file():
                print(
                    f"error: {key}={choice}: no such choice (no conf/{key}/{choice}.yaml). "
                    f"Available: {', '.join(options)}.",
                    file=sys.stderr,
                )
                raise SystemExit(2)
