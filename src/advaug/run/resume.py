"""Which checkpoint a run resumes from, and the guards against overwriting a finished run and
against claiming one made with another configuration (a rerun into the same folder).

``ckpt_path`` accepts:

* ``null``: start fresh, unless this run folder (a fixed ``hydra.run.dir``) holds an unfinished
  run, i.e. ``checkpoints/last.ckpt`` and no ``metrics.json`` (killed) or one that says
  ``interrupted`` (Ctrl-C, SIGTERM pre-emption): then it resumes ("rerun the same command after a
  kill"). A fresh start in the folder of a *failed* run first moves that run's ``checkpoints/``
  aside to ``checkpoints.failed/`` (never deleted), so that neither its ``best.ckpt`` nor its
  ``last.ckpt`` is mistaken for the new run's;
* a file: resume from it;
* ``last``: the newest ``checkpoints/last.ckpt`` of the same output tree
  (``logs/<task>/runs/*/`` for a run, ``logs/<task>/multiruns/*/<same job subdir>/`` in a sweep).

``resume_dir=<run folder>`` is short for ``ckpt_path=<run folder>/checkpoints/last.ckpt``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from advaug.errors import ConfigError
from advaug.run.distributed import in_multirun, is_rank_zero
from advaug.run.folder import INTERRUPTED, METRICS_FILE, RUN_CONFIG, is_completed, read_status, run_config
from advaug.utils.config import config_differences

log = logging.getLogger(__name__)

LAST = Path("checkpoints") / "last.ckpt"


def latest_last_checkpoint(output_dir: str | Path, multirun: bool = False) -> Path | None:
    """The newest ``checkpoints/last.ckpt`` among sibling run folders of ``output_dir``."""
    out = Path(output_dir)
    if multirun:  # .../multiruns/<time>/<job subdir>: the same job of earlier sweeps
        candidates = out.parent.parent.glob(f"*/{out.name}/{LAST.as_posix()}")
    else:  # .../runs/<time>
        candidates = out.parent.glob(f"*/{LAST.as_posix()}")
    found = [p for p in candidates if p.is_file()]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def resolve_ckpt_path(cfg: DictConfig) -> str | None:
    """The checkpoint ``train`` resumes from (see the module docstring), or None for a fresh start.

    Raises :class:`ConfigError` when the output folder already holds a completed run, or when the
    requested checkpoint does not exist.
    """
    out = Path(cfg.paths.output_dir)
    if is_completed(out):
        raise ConfigError(
            f"{out / METRICS_FILE}: this folder already holds a completed run; results are never "
            "overwritten. Choose another hydra.run.dir (or leave it at its timestamped default)."
        )
    requested = cfg.get("ckpt_path")
    resume_dir = cfg.get("resume_dir")
    if requested and resume_dir:
        raise ConfigError(f"ckpt_path={requested} and resume_dir={resume_dir}: give one of them, not both.")
    if resume_dir:
        path = Path(resume_dir) / LAST
        if not path.is_file():
            raise ConfigError(
                f"resume_dir={resume_dir}: {path} does not exist. Point resume_dir at a run folder "
                "(logs/<task>/runs/<time>) that has checkpoints/last.ckpt."
            )
        return str(path)
    if requested == "last":
        path = latest_last_checkpoint(out, in_multirun())
        if path is None:
            raise ConfigError(
                f"ckpt_path=last: no checkpoints/last.ckpt in any run folder next to {out}. "
                "Give the checkpoint file instead: ckpt_path=<run>/checkpoints/last.ckpt."
            )
        log.info("ckpt_path=last: resuming from %s", path)
        return str(path)
    if requested:
        if not Path(requested).is_file():
            raise ConfigError(f"ckpt_path={requested}: no such file. Give a .ckpt file, or ckpt_path=last.")
        return str(requested)
    own, status = out / LAST, read_status(out)
    if own.is_file() and (status is None or status.get("status") == INTERRUPTED):
        log.info("%s holds an unfinished run: resuming from %s", out, own)
        return str(own)
    if status is not None and (out / LAST.parent).is_dir() and is_rank_zero():
        set_aside(out / LAST.parent)
    return None


def set_aside(folder: Path) -> Path:
    """Rename ``folder`` to ``<folder>.failed`` (``.failed-2``, ... when taken) and return the new path."""
    target, n = folder.with_name(f"{folder.name}.failed"), 1
    while target.exists():
        n += 1
        target = folder.with_name(f"{folder.name}.failed-{n}")
    folder.rename(target)
    log.warning("%s: the failed run's checkpoints moved to %s; starting afresh", folder.parent, target)
    return target


def _stored_config(stored: Path) -> dict[str, Any]:
    """The run config saved in ``stored``; :class:`ConfigError` when it cannot be read as one."""
    try:
        config = OmegaConf.to_container(OmegaConf.load(stored))
    except Exception as exc:  # unreadable: it cannot vouch for the run
        config = exc
    if not isinstance(config, dict):
        why = " ".join(str(config).split())[:200]  # a YAML error spans lines: keep the message one line
        raise ConfigError(
            f"{stored}: not a readable run config ({why}), so the completed run in {stored.parent} cannot "
            "be matched to this job. Sweep into a new folder: hydra.sweep.dir=<new folder>."
        )
    return config


def check_same_run(output_dir: str | Path, cfg: Any, shown: int = 4) -> None:
    """Raise :class:`ConfigError` when the completed run in ``output_dir`` was made with another
    configuration than ``cfg`` (keys that do not change results aside, see
    :func:`advaug.utils.config.config_differences`). A folder without ``config_resolved.yaml``
    passes: there is nothing to compare with.

    A sweep job's folder is named after its overrides, so a rerun into the same ``hydra.sweep.dir``
    finds its own earlier run there; an edited conf/*.yaml (or a folder name from before the names
    were hashed) can still put another configuration into it, whose results must not be claimed.
    """
    stored = Path(output_dir) / RUN_CONFIG
    if not stored.is_file():
        return
    old = _stored_config(stored)
    run_cfg = run_config(cfg)
    # through YAML as train() wrote it, so that both sides have the same types
    new = OmegaConf.to_container(OmegaConf.create(OmegaConf.to_yaml(run_cfg, resolve=True)))
    diffs = config_differences(old, new)
    if diffs:
        listed = "; ".join(f"{key}: {a!r} then, {b!r} now" for key, a, b in diffs[:shown])
        more = f" (and {len(diffs) - shown} more)" if len(diffs) > shown else ""
        raise ConfigError(
            f"{output_dir} already holds a completed run of a different configuration ({listed}{more}); "
            "it is kept and this job is not run. Sweep into a new folder: hydra.sweep.dir=<new folder> "
            "(or leave it at its timestamped default)."
        )
