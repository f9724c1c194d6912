"""Helpers the benchmark scripts share: wait for the device, and name it in the printout."""

from __future__ import annotations

import torch


def sync(device: str | torch.device) -> None:
    """Wait until ``device`` has finished its queued work (a no-op on the CPU)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def device_name(device: str | torch.device) -> str:
    """The GPU's name, or ``cpu (<threads> threads)``."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads)"


def product_log_every() -> int:
    """``trainer.log_every_n_steps`` of conf/trainer/default.yaml: the benchmarks' Trainers log as
    often as a product run does (Lightning's own default, 50, would log ten times less)."""
    from pathlib import Path

    from omegaconf import OmegaConf

    conf = Path(__file__).resolve().parents[1] / "conf" / "trainer" / "default.yaml"
    return int(OmegaConf.load(conf).log_every_n_steps)
