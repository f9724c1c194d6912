"""Find the jobs under run / multirun folders and read what each one left behind.

A *job folder* is any folder holding ``metrics.json``, ``robustness.json``, ``config_resolved.yaml``
or ``.hydra/config.yaml`` (Hydra writes the last at job start, so a job that crashed early is
still found). Every job is kept, with a status: ``completed``, ``failed`` (metrics.json with another
status, or unreadable), ``missing`` (no metrics.json: crashed, killed or still running) or
``evaluation`` (a ``src/evaluate.py`` output: robustness only).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from advaug.errors import ConfigError

MARKERS = ("metrics.json", "robustness.json", "config_resolved.yaml")
# overrides that never distinguish one method from another (they are grouped or irrelevant)
NOT_A_VARIANT = {"seed", "dataset", "aug", "experiment", "ckpt_path", "task_name", "tags"}
NOT_A_VARIANT_PREFIX = ("paths.", "hydra.", "trainer.devices", "logger", "trainer.enable_progress_bar")


@dataclass
class Job:
    """One training (or evaluation) job and the results it wrote."""

    path: Path
    status: str
    reason: str = ""
    dataset: str | None = None
    aug: str | None = None
    seed: int | None = None
    overrides: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, Any] | None = None
    robustness: dict[str, Any] | None = None
    variant: str = ""
    config: Any = None  # the job's resolved config (OmegaConf), when readable

    @property
    def method(self) -> str:
        """The row label: the aug name plus any swept key that sets this job apart (``fgsm [aug.eps=0.05]``)."""
        name = self.aug or "?"
        return f"{name} [{self.variant}]" if self.variant else name

    @property
    def ok(self) -> bool:
        return self.status == "completed"


def find_job_dirs(root: str | Path) -> list[Path]:
    """Job folders under ``root`` (``root`` itself may be one); their own subfolders are not searched."""
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(
            f"{root}: not a folder; pass a run or multirun folder such as logs/train/multiruns/<time>."
        )
    found = []
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        if any(m in files for m in MARKERS) or (here / ".hydra" / "config.yaml").is_file():
            found.append(here)
            dirs[:] = []
        else:
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
    return sorted(found)


def _read_json(path: Path) -> tuple[dict | None, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return None, f"{path.name} unreadable ({type(exc).__name__}: {exc})"
    if not isinstance(data, dict):
        return None, f"{path.name} is not a JSON object"
    return data, ""


def _load_config(folder: Path) -> Any:
    for name in ("config_resolved.yaml", ".hydra/config.yaml"):
        if (folder / name).is_file():
            try:
                return OmegaConf.load(folder / name)
            except Exception:  # a broken config is reported through the job's status, not raised
                return None
    return None


def _config_facts(cfg: Any) -> dict[str, Any]:
    """dataset / aug / seed from the saved config, for jobs that wrote no metrics."""
    if cfg is None:
        return {}
    return {
        k: OmegaConf.select(cfg, key, default=None, throw_on_resolution_failure=False)
        for k, key in (("dataset", "dataset.name"), ("aug", "aug.name"), ("seed", "seed"))
    }


def _overrides(folder: Path) -> dict[str, str]:
    path = folder / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return {}
    out = {}
    for item in OmegaConf.to_container(OmegaConf.load(path)) or []:
        key, _, value = str(item).lstrip("+~").partition("=")
        out[key] = value
    return out


def load_job(folder: Path) -> Job:
    """Read one job folder into a :class:`Job`, never raising for a broken or half-finished job."""
    job = Job(path=folder, status="missing", overrides=_overrides(folder), config=_load_config(folder))
    facts = _config_facts(job.config)
    if (folder / "robustness.json").is_file():
        job.robustness, why = _read_json(folder / "robustness.json")
        if why:
            job.reason = why
    metrics_path = folder / "metrics.json"
    if metrics_path.is_file():
        job.metrics, why = _read_json(metrics_path)
        if job.metrics is None:
            job.status, job.reason = "failed", why
        elif job.metrics.get("status") != "completed":
            job.status = "failed"
            detail = job.metrics.get("error") or job.metrics.get("reason") or ""
            job.reason = f"status={job.metrics.get('status')!r} {detail}".strip()
        else:
            job.status = "completed"
        facts.update(
            {k: job.metrics[k] for k in ("dataset", "aug", "seed") if job.metrics and k in job.metrics}
        )
    elif job.robustness and job.robustness.get("meta", {}).get("source") == "evaluate":
        job.status = "evaluation"
        facts.update({k: v for k, v in job.robustness["meta"].items() if k in ("dataset", "aug", "seed")})
    else:
        job.reason = "no metrics.json (the job crashed, was killed or is still running)"
    job.dataset, job.aug, job.seed = facts.get("dataset"), facts.get("aug"), facts.get("seed")
    return job


def _value(job: Job, key: str) -> str:
    """The job's effective value of a ``dotted.key``: from its resolved config when that holds it
    (so an override that only repeats the default is no variant), else from its overrides.
    Config-group choices (``trainer=gpu``) compare as overridden."""
    if "." in key and job.config is not None:
        value = OmegaConf.select(job.config, key, default=None, throw_on_resolution_failure=False)
        if value is not None or key not in job.overrides:
            return str(OmegaConf.to_container(value) if OmegaConf.is_config(value) else value)
    return job.overrides.get(key, "")


def assign_variants(jobs: list[Job]) -> None:
    """Label each job with the overrides whose effective values vary across ``jobs`` (other than
    seed, dataset, aug)."""
    keys = {k for j in jobs for k in j.overrides}
    varying = sorted(
        k
        for k in keys
        if k not in NOT_A_VARIANT
        and not k.startswith(NOT_A_VARIANT_PREFIX)
        and len({_value(j, k) for j in jobs}) > 1
    )
    for job in jobs:
        job.variant = ",".join(f"{k}={job.overrides[k]}" for k in varying if k in job.overrides)


def collect(roots: list[str | Path]) -> list[Job]:
    """Every job under ``roots``, with variants assigned across all of them."""
    jobs = [load_job(folder) for root in roots for folder in find_job_dirs(root)]
    if not jobs:
        raise ConfigError(
            f"no job folders under {', '.join(map(str, roots))} (looked for {', '.join(MARKERS)} or .hydra/)."
        )
    assign_variants(jobs)
    return jobs
