"""Where the time of one steady training epoch goes, for ``aug=none``, ``regenerate`` and ``free``:
``torch.profiler`` over epoch 1 (its start to the start of epoch 2, so the epoch-end work counts)
of the ``epoch_overhead.py`` runs. For each kind it prints the epoch's wall time, how long the
device was busy (summed self time of device kernels; busy / wall far below 1 means the step is
host-bound), and for the augmented kinds the ops that cost most *more* than in ``none``, by device
self time and by host self time — the decomposition to read when ``epoch_overhead.py`` misses
its goal. Busy time is the sum of the kernels' own durations (one stream: they do not overlap)::

    python benchmarks/profile_epoch.py --device cuda --num-images 512 --size 128 --batch 16 \
        --bf16 --channels-last --attack-batch 256
    python benchmarks/profile_epoch.py --device cpu --num-images 32 --size 64     # host side only

Takes the same options as ``epoch_overhead.py`` (``--epochs`` is raised to 3 at least).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import lightning as L  # noqa: E402
import torch  # noqa: E402
from bench_common import device_name, sync  # noqa: E402
from epoch_overhead import make_dataset, parse_args, run  # noqa: E402
from torch.autograd import DeviceType  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

KINDS = ("none", "regenerate", "free")


def self_times(events, device: bool) -> dict[str, float]:
    """Self time in ms per name: of the device kernels (``device``), or of the host ops.

    Kernels are counted once, by their own events: the profiler also credits each kernel's time
    to the host op that launched it, and GPU user annotations span kernels too (torch's own
    summary skips both the same way)."""
    out: dict[str, float] = {}
    for e in events:
        if device:
            if e.device_type != DeviceType.CUDA or getattr(e, "is_user_annotation", False):
                continue
            us = e.self_device_time_total
        else:
            us = e.self_cpu_time_total
        if us:
            out[e.key] = out.get(e.key, 0.0) + us / 1e3
    return out


class EpochProfile(L.Callback):
    """Profiles training epoch ``epoch`` from its start to the next epoch's start (or the end)."""

    def __init__(self, device: str, epoch: int = 1) -> None:
        self.device, self.epoch = device, epoch
        self.wall, self.steps = 0.0, 0
        self.host: dict[str, float] = {}
        self.kernels: dict[str, float] = {}
        self._prof = None
        self._start = 0.0

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == self.epoch:
            activities = [ProfilerActivity.CPU]
            if self.device.startswith("cuda"):
                activities.append(ProfilerActivity.CUDA)
            sync(self.device)
            self._prof = profile(activities=activities)
            self._prof.__enter__()
            self._start = time.perf_counter()
        elif trainer.current_epoch == self.epoch + 1:
            self._stop()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.steps += self._prof is not None

    def on_train_end(self, trainer, pl_module) -> None:
        self._stop()

    def _stop(self) -> None:
        if self._prof is None:
            return
        sync(self.device)
        self.wall = time.perf_counter() - self._start
        self._prof.__exit__(None, None, None)
        events = self._prof.key_averages()
        self._prof = None
        self.host = self_times(events, device=False)
        if self.device.startswith("cuda"):
            self.kernels = self_times(events, device=True)


def print_extra(kind: str, what: str, times: dict[str, float], base: dict[str, float], top: int) -> None:
    """The ``top`` ops whose self time in ``kind`` exceeds that in ``none`` most."""
    extra = sorted(((t - base.get(k, 0.0), k) for k, t in times.items()), reverse=True)[:top]
    total = sum(times.values()) - sum(base.values())
    print(f"    {what} self time, {kind} minus none: {total:+.1f} ms in all; largest:")
    for ms, name in extra:
        if ms > 0:
            print(f"      {ms:+9.2f} ms  {name[:90]}")


def print_kind(kind: str, prof: EpochProfile, base: EpochProfile, top: int) -> None:
    """One kind's wall, host and device time, and (not for ``none``) its ops costing most over ``base``."""
    line = f"{kind:>10}: {prof.wall:7.3f} s wall, {prof.steps} steps, host ops {sum(prof.host.values()) / 1e3:6.3f} s"
    if prof.kernels:
        busy = sum(prof.kernels.values()) / 1e3
        line += f", device busy {busy:6.3f} s ({busy / prof.wall:.0%} of wall)"
    print(line, flush=True)
    if kind == "none":
        return
    print(f"    wall ratio {kind} / none: {prof.wall / base.wall:.3f}")
    if prof.kernels:
        print_extra(kind, "device", prof.kernels, base.kernels, top)
    print_extra(kind, "host", prof.host, base.host, top)
    sys.stdout.flush()


def main(argv=None) -> dict[str, EpochProfile]:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--top", type=int, default=10, help="rows per table")
    p.add_argument("--kinds", default=",".join(KINDS), help="comma-separated subset of none,regenerate,free")
    args = parse_args(argv, description=__doc__, parents=[p])
    args.epochs = max(args.epochs, 3)
    asked = {k for k in args.kinds.split(",") if k}
    kinds = [k for k in KINDS if k in asked]  # none first: the others are read against it
    if "none" not in asked or not asked <= set(KINDS):
        raise SystemExit(f"--kinds={args.kinds}: a subset of {','.join(KINDS)} that includes none")
    if args.threads:
        torch.set_num_threads(args.threads)
    profiles: dict[str, EpochProfile] = {}
    print(
        f"device: {device_name(args.device)}; epoch 1 of {args.num_images} clean + {args.num_images} pool "
        f"images {args.size}x{args.size}, batch {args.batch}, bf16={args.bf16}, on_device={args.on_device}",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as tmp:
        root = make_dataset(Path(tmp), args.num_images, args.size)
        run("none", root, argparse.Namespace(**{**vars(args), "epochs": 1}))  # warm-up
        for kind in kinds:  # each kind printed once measured: a run cut short keeps what it has
            profiles[kind] = prof = EpochProfile(args.device)
            run(kind, root, args, extra=(prof,))
            print_kind(kind, prof, profiles["none"], args.top)
    return profiles


if __name__ == "__main__":
    main()
