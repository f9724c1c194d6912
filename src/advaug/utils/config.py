"""Hydra/OmegaConf glue: the project-root resolver and config checks."""

from __future__ import annotations

from pathlib import Path

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


def register_resolvers() -> None:
    """Register ``${advaug_root:}`` (idempotent; safe to call from every entry point)."""
    if not OmegaConf.has_resolver("advaug_root"):
        OmegaConf.register_new_resolver("advaug_root", lambda: str(project_root()))


def config_dir() -> Path:
    """Absolute path of the project's ``conf/`` folder."""
    return project_root() / "conf"
