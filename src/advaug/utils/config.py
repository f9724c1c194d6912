"""Hydra/OmegaConf glue: the project-root resolver and config checks."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

_CONF_MARKER = Path("conf") / "train.yaml"


def project_root(start: str | Path | None = None) -> Path:
    """The folder holding ``conf/train.yaml``: searched upwards from this package, then the cwd.

    Lets ``python src/train.py`` find ``data/`` and ``logs/`` without environment variables,
    whether or not the package is installed (editable installs resolve to the checkout).
    """
    candidates = [Path(start)] if start else []
    candidates += [Path(__file__).resolve(), Path.cwd().resolve()]
    for base in candidates:
        for folder in [base, *base.parents]:
            if (folder / _CONF_MARKER).is_file():
                return folder
    return Path.cwd().resolve()


def when(value: Any, expected: Any, then: Any) -> Any:
    """``then`` if ``value == expected`` else None (``${advaug_when:${aug.protocol},online,...}``)."""
    return then if str(value) == str(expected) else None


def first_set(*values: Any) -> Any:
    """The first value that is not null/empty (``${advaug_or:${hydra:runtime.choices.experiment},train}``)."""
    return next((v for v in values if v is not None and str(v) not in ("", "None", "null")), None)


def safe_dirname(text: Any, max_len: int = 120) -> str:
    """One folder name from ``text``: path separators replaced, at most ``max_len`` characters.

    For ``hydra.sweep.subdir``: ``dataset.root=/a/b`` would otherwise nest folders (or climb out
    of the sweep with ``..``), and many overrides exceed the 255-byte file-name limit. A longer
    name keeps its first ``max_len - 9`` characters plus ``-`` and 8 hex digits of the SHA-1 of
    the whole text: Hydra sorts overrides by key, so a plain cut drops ``seed=``/``trainer.*``
    and two sweeps' different jobs would share a folder.
    """
    name = str(text).replace("/", "_").replace("\\", "_")
    if len(name) <= max_len:
        return name
    digest = hashlib.sha1(str(text).encode("utf-8")).hexdigest()[:8]
    return f"{name[: max_len - 9]}-{digest}"


# resolved-config keys that do not change a run's results: where it writes, how it reports,
# which checkpoint it resumed from, how many devices shared it (the global batch is checked by
# the config checks). A completed sweep job is only skipped when everything else matches.
RESULT_NEUTRAL_KEYS = (
    "paths",
    "hydra",
    "ckpt_path",
    "resume_dir",
    "trainer.enable_progress_bar",
    "trainer.devices",
    "callbacks.progress_bar",  # follows trainer.enable_progress_bar
    "callbacks.model_checkpoint.keep_last",  # whether last.ckpt outlives a completed run
    "logger",
    "tags",
)


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists and empty dicts are leaves."""
    if not isinstance(node, dict) or not node:
        return {prefix: node}
    flat: dict[str, Any] = {}
    for key, value in node.items():
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def _rebase(value: Any, old_paths: dict[str, Any], new_paths: dict[str, Any]) -> Any:
    """``value`` with a leading old ``paths.*`` folder replaced by the new one (longest first)."""
    if not isinstance(value, str):
        return value
    pairs = [(str(old_paths[k]), str(new_paths[k])) for k in old_paths if k in new_paths]
    for old, new in sorted(pairs, key=lambda p: len(p[0]), reverse=True):
        if old and (value == old or value.startswith(old.rstrip("/") + "/")):
            return new + value[len(old) :]
    return value


def config_differences(old: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """``(key, old value, new value)`` for each dotted key whose value changes a run's results.

    Keys under :data:`RESULT_NEUTRAL_KEYS` are ignored, and so is a moved ``paths.*`` folder in
    values below it (``dataset.root``, ``callbacks.model_checkpoint.dirpath``): a sweep folder
    copied elsewhere, or another checkout, holds the same runs. ``<missing>`` marks a key only
    one side has; a key the old config lacks whose new value is null is no difference (an option
    added by a later version of advaug, left at its off setting, which is the old behaviour).
    """
    old_paths, new_paths = old.get("paths") or {}, new.get("paths") or {}
    flat_old = {k: _rebase(v, old_paths, new_paths) for k, v in flatten(old).items()}
    flat_new = flatten(new)
    below = tuple(f"{k}." for k in RESULT_NEUTRAL_KEYS)
    diffs = []
    for key in [*flat_new, *(k for k in flat_old if k not in flat_new)]:  # in config order
        if key in RESULT_NEUTRAL_KEYS or key.startswith(below):
            continue
        a, b = flat_old.get(key, "<missing>"), flat_new.get(key, "<missing>")
        if a == "<missing>" and b is None:
            continue
        if a != b:
            diffs.append((key, a, b))
    return diffs


def register_resolvers() -> None:
    """Register the ``advaug_*`` resolvers (idempotent; safe to call from every entry point)."""
    if not OmegaConf.has_resolver("advaug_root"):
        OmegaConf.register_new_resolver("advaug_root", lambda: str(project_root()))
    if not OmegaConf.has_resolver("advaug_when"):
        OmegaConf.register_new_resolver("advaug_when", when)
    if not OmegaConf.has_resolver("advaug_or"):
        OmegaConf.register_new_resolver("advaug_or", first_set)
    if not OmegaConf.has_resolver("advaug_dirname"):
        OmegaConf.register_new_resolver("advaug_dirname", safe_dirname)


def config_dir() -> Path:
    """Absolute path of the project's ``conf/`` folder."""
    return project_root() / "conf"
