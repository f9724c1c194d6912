"""What sets a job's configuration apart: the overrides whose effective values vary across the
collected jobs, and each job's ``k=v,...`` variant label."""

from __future__ import annotations

from typing import TYPE_CHECKING

from omegaconf import OmegaConf

from advaug.controls import CONTROLS

if TYPE_CHECKING:
    from advaug.reporting.collect import Job

# overrides that never distinguish one method from another (they are grouped or irrelevant)
# (dataset.fold: the folds of a k-fold sweep are one method's model, joined per seed)
NOT_A_VARIANT = {"seed", "dataset", "aug", "base", "experiment", "ckpt_path", "task_name", "tags", "dataset.fold"}
NOT_A_VARIANT_PREFIX = ("paths.", "hydra.", "trainer.devices", "logger", "trainer.enable_progress_bar")


def _value(job: Job, key: str) -> str:
    """The job's effective value of a ``dotted.key``: from its resolved config when that holds it
    (so an override that only repeats the default is no variant), else from its overrides.
    A config-group choice (``trainer=gpu``) compares by the option the group took, so that
    ``trainer=default`` given on the command line is no variant; by the override where Hydra's
    record of the choices is missing."""
    if "." not in key and key in job.choices:
        return job.choices[key]
    if "." in key and job.config is not None:
        value = OmegaConf.select(job.config, key, default=None, throw_on_resolution_failure=False)
        if value is not None or key not in job.overrides:
            return str(OmegaConf.to_container(value) if OmegaConf.is_config(value) else value)
    return job.overrides.get(key, "")


def _unused(job: Job, key: str) -> bool:
    """``aug.eps`` of a control (``aug=none``, ``same_steps``) in a sweep over eps: it reads no
    eps, so it ran once per value, identically, and each run is the plain control row."""
    return key == "aug.eps" and job.aug in CONTROLS


def varying_keys(jobs: list[Job]) -> list[str]:
    """The overrides (other than seed, dataset, aug, paths, ...) whose effective values differ
    across ``jobs``."""
    keys = {k for j in jobs for k in j.overrides}
    return sorted(
        k
        for k in keys
        if k not in NOT_A_VARIANT
        and not k.startswith(NOT_A_VARIANT_PREFIX)
        and len({_value(j, k) for j in jobs}) > 1
    )


def variant_label(job: Job, keys: list[str], population: list[Job]) -> str:
    """``k=v,...`` for the varying ``keys`` that ``job`` overrides to a value of its own.

    A key counts only where the job's effective value differs from that of the same-aug jobs in
    ``population`` without the override (``aug.labels=true`` that repeats the default is no
    variant); with no such jobs to compare against, the override itself labels the job.
    """
    parts = []
    for key in keys:
        if key not in job.overrides or _unused(job, key):
            continue
        plain = {_value(o, key) for o in population if (o.aug, o.base) == (job.aug, job.base) and key not in o.overrides}
        if not plain or _value(job, key) not in plain:
            parts.append(f"{key}={job.overrides[key]}")
    return ",".join(parts)
