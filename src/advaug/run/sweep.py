"""``<sweep dir>/summary.json``: which jobs of a Hydra multirun finished, failed, or never ended;
and the value a job returns to the sweeper (:func:`objective`).

Hydra 1.3's basic launcher stops a sweep at the first job that raises ``SystemExit`` and re-raises
any other job exception after the batch; ``advaug.run.entry.run_entry`` therefore records a failing
job's error in its ``metrics.json`` and returns, and this Hydra callback collects the statuses
once the sweep is over (also for the joblib launcher, whose jobs run in other processes).
"""

from __future__ import annotations

import logging
import math
import sys
import time
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from advaug.reporting.collect import Job, find_job_dirs, load_job
from advaug.run.signals import stop_workers_on_sigterm
from advaug.utils.io import atomic_write_json

log = logging.getLogger(__name__)

SUMMARY_FILE = "summary.json"


def _overrides(job_dir: Path) -> list[str]:
    path = job_dir / ".hydra" / "overrides.yaml"
    try:
        return [str(o) for o in OmegaConf.load(path)]
    except (OSError, ValueError, TypeError):
        return []


# the report's job status (advaug.reporting.collect) -> the summary's word for it
SUMMARY_STATUS = {"completed": "ok", "evaluation": "ok", "failed": "failed", "missing": "incomplete"}


def _finished_before(job: Job, started_at: float | None) -> bool:
    """Whether the job's metrics.json predates ``started_at``: a completed folder the sweep skipped."""
    if started_at is None:
        return False
    try:
        return (job.path / "metrics.json").stat().st_mtime < started_at
    except OSError:
        return False


def _entry(sweep_dir: Path, job: Job, started_at: float | None = None) -> dict[str, Any]:
    """One job's line of summary.json: its folder, overrides, status, and test scores or error;
    ``skipped: true`` on a completed job whose results were written before ``started_at``."""
    entry: dict[str, Any] = {
        "job": job.path.relative_to(sweep_dir).as_posix(),
        "overrides": _overrides(job.path),
        "status": SUMMARY_STATUS[job.status],
    }
    if job.ok:
        if _finished_before(job, started_at):
            entry["skipped"] = True  # rerun of the sweep: kept, not trained again
        entry["test"] = (job.metrics or {}).get("test", {})
    elif job.status != "evaluation":
        # the run's own message when it recorded one, else why the report counts it as failed / missing
        failed_itself = (job.metrics or {}).get("status") == "failed"
        entry["error"] = (job.metrics or {}).get("error") if failed_itself else job.reason
    return entry


def summarize_sweep(sweep_dir: str | Path, started_at: float | None = None) -> dict[str, Any]:
    """Status of every job folder below ``sweep_dir``, found and judged as ``src/report.py`` does
    (:func:`~advaug.reporting.collect.find_job_dirs`, :func:`~advaug.reporting.collect.load_job`), so
    jobs without ``.hydra/`` (``hydra.output_subdir=null``) count too.

    ``ok``: metrics.json says completed (or an evaluation output); ``failed``: metrics.json says
    anything else, or is unreadable (with the message); ``incomplete``: no metrics.json (killed,
    or still running). With ``started_at`` (a ``time.time()``), completed jobs whose results
    predate it are marked ``skipped`` and counted under ``counts["skipped"]`` too.
    """
    sweep_dir = Path(sweep_dir)
    jobs = [_entry(sweep_dir, load_job(d), started_at) for d in find_job_dirs(sweep_dir)]
    counts: dict[str, int] = {}
    for job in jobs:
        counts[job["status"]] = counts.get(job["status"], 0) + 1
        if job.get("skipped"):
            counts["skipped"] = counts.get("skipped", 0) + 1
    return {"sweep_dir": str(sweep_dir), "counts": counts, "jobs": jobs}


def write_summary(sweep_dir: str | Path, started_at: float | None = None) -> dict[str, Any]:
    """Write ``summary.json`` into ``sweep_dir`` (atomically) and return it."""
    summary = summarize_sweep(sweep_dir, started_at)
    atomic_write_json(Path(sweep_dir) / SUMMARY_FILE, summary)
    return summary


# the value of a job without a validation score: below every score, and a number Optuna records as a
# completed trial (NaN would fail the trial, and a study whose trials all failed has no best trial)
FAILED_OBJECTIVE = -math.inf


def objective(metrics: dict[str, Any] | None) -> float:
    """The value a Hydra sweeper optimises (higher is better, ``direction: maximize``): the best
    validation mean IoU, never a test score (a sweeper would tune on the test set);
    :data:`FAILED_OBJECTIVE` (-inf) for a failed job or one without a finite validation score."""
    value = (metrics or {}).get("best_val_miou")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return FAILED_OBJECTIVE
    return float(value)


class SweepSummary(Callback):
    """Hydra callback: after a multirun, write ``summary.json`` and exit with status 1 if any job
    did not complete (so scripts and CI notice), naming the failed jobs on stderr. Jobs a rerun
    skipped (their folder already held the completed run) are marked ``skipped``. A SIGTERM to a
    joblib sweep also stops its worker processes (:func:`stop_workers_on_sigterm`)."""

    def __init__(self) -> None:
        self.started_at: float | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.started_at = time.time()
        stop_workers_on_sigterm(config)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            return
        summary = write_summary(sweep_dir, self.started_at)
        bad = [j for j in summary["jobs"] if j["status"] != "ok"]
        log.info("sweep summary: %s -> %s", summary["counts"], sweep_dir / SUMMARY_FILE)
        if bad:
            for job in bad:
                print(f"error: sweep job {job['job']} {job['status']}: {job.get('error')}", file=sys.stderr)
            print(
                f"error: {len(bad)} of {len(summary['jobs'])} sweep jobs did not complete; the others kept "
                f"their results. See {sweep_dir / SUMMARY_FILE}.",
                file=sys.stderr,
            )
            raise SystemExit(1)
