"""Where and with what a run was made: commit, device, library versions (for metrics.json)."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

import lightning
import torch

REPO = Path(__file__).resolve().parents[3]


def git_commit(repo: Path = REPO) -> str | None:
    """``$ADVAUG_COMMIT`` when set (code copied to a container or GPU machine, whose ``.git`` may
    be missing or stale), else the checkout's commit (``+dirty`` when tracked files differ), else None."""
    if os.environ.get("ADVAUG_COMMIT"):
        return os.environ["ADVAUG_COMMIT"]
    try:
        sha = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short=12", "HEAD"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def describe(device: torch.device, precision: str | None = None) -> dict[str, str | None]:
    """Commit, device name, torch / lightning / python versions and the trainer precision."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = (
            f"{device.type} ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
        )
    return {
        "commit": git_commit(),
        "device": name,
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "python": platform.python_version(),
        "precision": precision,
    }
