"""Find the jobs under run / multirun folders and read what each one left behind.

A *job folder* is any folder holding ``metrics.json``, ``robustness.json``, ``config_resolved.yaml``
or ``.hydra/config.yaml`` / ``.hydra/overrides.yaml`` (Hydra writes those at job start, so a job
that crashed early is still found). Every job is kept, with a status: ``completed``, ``failed``
(metrics.json with another status, or unreadable), ``missing`` (no metrics.json: crashed, killed
or still running) or ``evaluation`` (a ``src/evaluate.py`` output: robustness only). The same
folder found through overlapping roots is one job; one seed of a method in two completed folders
is an error (:func:`check_one_job_per_seed`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from advaug.controls import CONTROLS
from advaug.errors import ConfigError
from advaug.reporting.variants import variant_label, varying_keys

MARKERS = ("metrics.json", "robustness.json", "config_resolved.yaml")
HYDRA_MARKERS = ("config.yaml", "overrides.yaml")  # inside .hydra/


def method_label(base: str, aug: str) -> str:
    """``aug``, or ``base + aug`` for an arm stacked on a base augmentation (``rotate + invfgsm``)."""
    return aug if base in ("none", "", None) else f"{base} + {aug}"


@dataclass
class Job:
    """One training (or evaluation) job and the results it wrote."""

    path: Path
    status: str
    reason: str = ""
    dataset: str | None = None
    aug: str | None = None
    base: str = "none"  # the base augmentation beneath aug (base=..., conf/base/)
    seed: int | None = None
    fold: int | None = None  # k-fold cross-validation (dataset.fold): the folds of a seed make one model's row
    overrides: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, Any] | None = None
    robustness: dict[str, Any] | None = None
    variant: str = ""
    config: Any = None  # the job's resolved config (OmegaConf), when readable
    choices: dict[str, str] = field(default_factory=dict)  # config group -> option, from .hydra/hydra.yaml

    @property
    def method(self) -> str:
        """The row label: the base augmentation (when there is one), the aug name and any swept key
        that sets this job apart (``fgsm [aug.eps=0.05]``, ``rotate + invfgsm [aug.eps=0.0157]``)."""
        name = method_label(self.base, self.aug or "?")
        return f"{name} [{self.variant}]" if self.variant else name

    @property
    def model(self) -> int | str:
        """The seed (a k-fold seed's folds share it), or the folder for a job without one."""
        return self.seed if self.seed is not None else str(self.path)

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
        if any(m in files for m in MARKERS) or any((here / ".hydra" / m).is_file() for m in HYDRA_MARKERS):
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
        for k, key in (
            ("dataset", "dataset.name"), ("aug", "aug.name"), ("base", "base.name"), ("seed", "seed"),
            ("fold", "dataset.fold"),
        )
    }  # fmt: skip


def _choices(folder: Path) -> dict[str, str]:
    """The option each config group took (``hydra.runtime.choices``), or {} where Hydra wrote none."""
    path = folder / ".hydra" / "hydra.yaml"
    if not path.is_file():
        return {}
    try:
        choices = OmegaConf.select(OmegaConf.load(path), "hydra.runtime.choices", default=None)
        return {str(k): str(v) for k, v in (OmegaConf.to_container(choices) or {}).items()}
    except Exception:  # a broken file only loses this refinement; the overrides still label the job
        return {}


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
    job = Job(
        path=folder,
        status="missing",
        overrides=_overrides(folder),
        config=_load_config(folder),
        choices=_choices(folder),
    )
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
            {k: job.metrics[k] for k in ("dataset", "aug", "base", "seed", "fold") if job.metrics and k in job.metrics}
        )
    elif job.robustness and job.robustness.get("meta", {}).get("source") == "evaluate":
        job.status = "evaluation"
        facts.update({k: v for k, v in job.robustness["meta"].items() if k in ("dataset", "aug", "base", "seed")})
    else:
        job.reason = "no metrics.json (the job crashed, was killed or is still running)"
    job.dataset, job.aug, job.seed = facts.get("dataset"), facts.get("aug"), facts.get("seed")
    job.fold = facts.get("fold")
    job.base = facts.get("base") or "none"
    return job


def _scored_run(job: Job) -> Path | None:
    """The training run folder whose checkpoint an evaluation job scored (``<run>/checkpoints/x.ckpt``),
    when robustness.json names the checkpoint and that folder still holds a run."""
    ckpt = ((job.robustness or {}).get("meta") or {}).get("ckpt_path")
    if not ckpt:
        return None
    ckpt = Path(ckpt)
    for folder in (ckpt, ckpt.parent, ckpt.parent.parent):  # the run folder itself, or above the .ckpt
        if folder.is_dir() and ((folder / "config_resolved.yaml").is_file() or (folder / ".hydra").is_dir()):
            return folder
    return None


def _link_evaluations(jobs: list[Job]) -> dict[int, Job]:
    """For each evaluation job (by ``id``): the training job whose checkpoint it scored, taken from
    ``jobs`` when that run was collected, else read from its folder (it then counts in the variant
    labels but is not reported)."""
    by_path = {j.path.resolve(): j for j in jobs if j.status != "evaluation"}
    links = {}
    for job in jobs:
        if job.status != "evaluation":
            continue
        run = _scored_run(job)
        if run is None:
            continue
        source = by_path.get(run.resolve())
        if source is None:
            source = by_path[run.resolve()] = load_job(run)
        if source.status != "evaluation":
            links[id(job)] = source
    return links


def assign_variants(jobs: list[Job]) -> None:
    """Label each job with the overrides that set its configuration apart (see :func:`variant_label`).

    Variance is judged over training jobs only: an evaluation job's config holds no ``trainer.*``
    keys and would make every training override "vary". An evaluation job takes the label, aug
    and seed of the training job whose checkpoint it scored (the dataset stays the one it was
    scored on), so it lands in that model's row; one whose run cannot be found keeps its own facts.
    """
    links = _link_evaluations(jobs)
    population = list({id(j): j for j in [*jobs, *links.values()] if j.status != "evaluation"}.values())
    keys = varying_keys(population)
    for job in population:
        job.variant = variant_label(job, keys, population)
    for job in jobs:
        source = links.get(id(job))
        if job.status == "evaluation" and source is not None:
            job.variant, job.aug, job.base, job.seed = source.variant, source.aug, source.base, source.seed
            job.fold = source.fold
            job.dataset = job.dataset if job.dataset is not None else source.dataset


def _unique_dirs(roots: list[str | Path]) -> list[Path]:
    """Job folders under every root, each once: overlapping roots find the same folder twice."""
    seen: dict[Path, Path] = {}
    for root in roots:
        for folder in find_job_dirs(root):
            seen.setdefault(folder.resolve(), folder)
    return list(seen.values())


def mark_repeated_baselines(jobs: list[Job]) -> None:
    """A sweep over eps that lists a control (``aug=none``, ``same_steps``) runs it once per eps
    value, identically (it reads no eps): the first run of each dataset, base and seed counts, the
    others get status ``repeat`` (listed in ``jobs.csv``, not averaged as further seeds)."""
    first: dict[tuple, Path] = {}
    for job in jobs:
        if not job.ok or job.seed is None or job.aug not in CONTROLS or "aug.eps" not in job.overrides:
            continue
        key = (str(job.dataset), job.method, job.seed, job.fold)
        if key in first:
            job.status, job.reason = "repeat", f"the same run as {first[key]} (aug={job.aug} reads no aug.eps)"
        else:
            first[key] = job.path


def check_one_job_per_seed(jobs: list[Job]) -> None:
    """Raise :class:`ConfigError` when two completed job folders hold the same dataset, method,
    seed and fold (a sweep rerun into a new folder): averaging them would count one seed twice."""
    seen: dict[tuple, Path] = {}
    for job in jobs:
        if not job.ok or job.seed is None:
            continue
        key = (str(job.dataset), job.method, job.seed, job.fold)
        if key in seen:
            fold = "" if job.fold is None else f", fold {job.fold}"
            raise ConfigError(
                f"{seen[key]} and {job.path} are both completed runs of dataset {key[0]}, method "
                f"{key[1]}, seed {key[2]}{fold}; they would be averaged as two seeds. Pass only one of them "
                "(the folder you mean, or a root that holds only one)."
            )
        seen[key] = job.path


def collect(roots: list[str | Path]) -> list[Job]:
    """Every job under ``roots`` (each folder once), with variants assigned across all of them.

    Raises :class:`ConfigError` for no job folders at all, or for one seed of a method found in two
    completed job folders.
    """
    jobs = [load_job(folder) for folder in _unique_dirs(roots)]
    if not jobs:
        raise ConfigError(
            f"no job folders under {', '.join(map(str, roots))} (looked for {', '.join(MARKERS)} or .hydra/)."
        )
    assign_variants(jobs)
    mark_repeated_baselines(jobs)
    check_one_job_per_seed(jobs)
    return jobs
