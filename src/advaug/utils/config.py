"""Hydra/OmegaConf glue: the project-root resolver and config checks."""

from __future__ import annotations

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
    """One folder name from ``text``: path separators replaced, cut to ``max_len`` characters.

    For ``hydra.sweep.subdir``: ``dataset.root=/a/b`` would otherwise nest folders (or climb out
    of the sweep with ``..``), and many overrides exceed the 255-byte file-name limit.
    """
    name = str(text).replace("/", "_").replace("\\", "_")
    return name[:max_len]


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
