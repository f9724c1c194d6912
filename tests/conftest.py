"""Shared fixtures: tiny synthetic data and composed training configs (Hydra compose API)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# pytest-xdist (`-n 2` in pyproject.toml): two workers share the cores, so each runs one torch
# thread, and so do the processes it starts (an OpenMP pool per worker would spin against the other)
if os.environ.get("PYTEST_XDIST_WORKER"):
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import torch  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from advaug.data.synthetic import SyntheticPhantomGenerator  # noqa: E402
from advaug.utils.config import register_resolvers  # noqa: E402

register_resolvers()
SHARED = ROOT.parent / "shared" / "datasets"


CVC = SHARED / "cvc-clinicdb"


def link_cvc_frames(root: Path, frames: list[str]) -> Path:
    """A CVC-ClinicDB subset at ``root``: the frames' images and masks and the video groups,
    symlinked (nothing copied from ../shared)."""
    for sub in ("images", "masks"):
        (root / sub).mkdir(parents=True)
        for i in frames:
            (root / sub / f"{i}.png").symlink_to(CVC / sub / f"{i}.png")
    (root / "sequences.json").symlink_to(CVC / "sequences.json")
    return root


def compose_config(overrides: list[str], tmp_path: Path, config_name: str = "train") -> DictConfig:
    """Compose a config like ``python src/train.py <overrides>`` would, writing into tmp_path."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=overrides, return_hydra_config=True)
    HydraConfig().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path / "run")
        cfg.paths.log_dir = str(tmp_path / "logs")
    GlobalHydra.instance().clear()
    return cfg


class ConstantNet(torch.nn.Module):
    """Two output channels that ignore the input: every input gradient is exactly 0."""

    num_classes = 2
    device = torch.device("cpu")

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 2, 1)
        torch.nn.init.zeros_(self.conv.weight)

    def forward(self, x):
        return self.conv(x)


TINY = [
    "dataset.image_size=32",
    "dataset.generator.num_images=16",
    "dataset.split={train: 0.5, val: 0.25, test: 0.25}",
    "batch_size=4",
    "trainer.accelerator=cpu",
    "trainer.enable_progress_bar=false",
    # a 3-stage encoder (ResNet18 to layer2, 0.7 M parameters instead of 14 M): the tiny runs train,
    # checkpoint and gather a small network (the default network: tests/test_export.py)
    "model.net.encoder_depth=3",
    "model.net.decoder_channels=[16,8,8]",
    # keep the end-of-run robustness grid cheap in tests (it still runs)
    "robustness.pgd_steps=2",
]
# TINY with all five encoder stages: smp keeps the unused stages' parameters at encoder_depth=3, which
# DDP refuses (no gradient), and the 3-stage net learns too little in 3 epochs for a loss-must-fall test
FIVE_STAGES = ["model.net.encoder_depth=5", "model.net.decoder_channels=[32,16,16,8,8]"]


# subprocess runs of the entry scripts: no robustness grid, one epoch, so that a job costs seconds
FAST = ["robustness.enabled=false", "trainer.max_epochs=1"]


def script_args(tmp_path: Path, data: Path | None = None) -> list[str]:
    """Overrides for a seconds-long ``src/train.py`` subprocess writing into tmp_path."""
    return [f"paths.data_dir={data or tmp_path / 'data'}", f"paths.log_dir={tmp_path / 'logs'}", *TINY, *FAST]


@pytest.fixture
def tiny_overrides(tmp_path: Path) -> list[str]:
    """Overrides for a seconds-long run on 16 synthetic 32x32 phantoms in tmp_path."""
    return [f"paths.data_dir={tmp_path / 'data'}", *TINY]


@pytest.fixture
def tiny_cfg(tmp_path: Path, tiny_overrides: list[str]) -> DictConfig:
    return compose_config([*tiny_overrides, "trainer.max_epochs=1"], tmp_path)


@pytest.fixture(scope="session")
def phantom_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16 synthetic phantoms at 32x32 in the on-disk format."""
    return SyntheticPhantomGenerator(num_images=16, size=32, seed=0).ensure(
        tmp_path_factory.mktemp("ph") / "syn"
    )


def subprocess_env(tmp_path: Path | None = None, fault_callbacks: bool = False) -> dict[str, str]:
    """Environment for an entry script run as a user would: no inherited Hydra state. With
    ``tmp_path``, a temporary folder under it: a process the test kills skips its exit handlers,
    so the temporary folders its libraries made (wandb's media / artifacts) would stay in /tmp.
    ``fault_callbacks`` puts tests/ on PYTHONPATH for ``+callbacks.x._target_=fault_callbacks...``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYDRA")}
    if tmp_path is not None:
        tmp = tmp_path / "tmp"
        tmp.mkdir(exist_ok=True)
        env["TMPDIR"] = str(tmp)
    if fault_callbacks:
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "tests"), env.get("PYTHONPATH", "")])
    return env


def run_entry_script(
    script: str, args: list[str], cwd: Path, timeout: int = 300
) -> subprocess.CompletedProcess:
    """Run ``src/<script> <args>`` in a subprocess as a user would (no inherited Hydra state).
    No TMPDIR under ``cwd``: tests check that a refused run wrote nothing there."""
    env = subprocess_env()
    return subprocess.run(
        [sys.executable, str(ROOT / "src" / script), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def slot(datamodule, name: str) -> dict[str, torch.Tensor] | None:
    """Pool slot ``name`` of ``datamodule`` as {"images": float in [0,1], "masks"}, or None."""
    got = datamodule.pool.get(name)
    return None if got is None else {"images": got[0], "masks": got[1]}
