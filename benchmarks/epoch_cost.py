"""Epoch cost by kind of augmentation, as ratios to ``none`` measured side by side in one run.

Kinds (``--kinds``, ``none`` always included):

* ``none``: plain training; its pool is a copy of the clean set, the same-steps control.
* ``regenerate`` / ``free``: the product's FGSM producer (eps 0.1) in that ``aug.mode``.
* ``input_grad``: ``none`` with the batch image's gradient computed and dropped: free mode's
  backward without its hooks, slots and epoch-end work.
* ``free_pageable``: ``free`` with a DataModule that does not pin: the pool's copy to the host
  goes to pageable memory, as it does with loader workers.

Every kind trains on the same samples per epoch (the clean set plus a pool of the same size).
Kinds run interleaved in one process, medians over ``--repeats``::

    python benchmarks/epoch_cost.py --device cpu --num-images 64 --size 64 --epochs 4 --repeats 5
    python benchmarks/epoch_cost.py --device cuda --num-images 512 --size 128 --batch 16 --bf16 \
        --channels-last --attack-batch 256 --epochs 4 --repeats 5 --kinds none,regenerate,free,input_grad

Per kind it prints seconds per steady epoch (epochs 1 .. epochs-2, from one epoch's start to the
next's, so the epoch-end work and the train-loader rebuild count; epoch 0 pays first-call costs and
the last epoch makes no pool), ms per step, and the whole ``trainer.fit`` (Trainer setup and the
first pool included, which weigh more on short GPU runs than over 30 epochs).

``--loop plain`` times the same steps on a loop without Trainer or DataLoader (both are the same
with and without free mode), with free mode's real hooks around each step and its epoch-end
publish timed on its own: far less noise, for ``none``, ``input_grad``, ``free``, ``free_pageable``.

Instruments (each kind then runs once, under it; timings under an instrument are not comparable):

* ``--profile``: torch.profiler over epoch 1; the epoch's wall time, host op time, device busy
  time (summed kernel self time; busy / wall far below 1 means the step is host-bound) and the ops
  costing most *more* than in ``none``, by device and by host self time.
* ``--count-syncs``: host-device syncs in epoch 1 by source line (CUDA only counts any);
  ``--product "OVERRIDES"`` (repeatable) counts them in whole ``src/train.py`` runs instead
  (3 epochs, the default callbacks, logger and progress bar included).
"""

from __future__ import annotations

import argparse
import collections
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from common import (
    NETS,
    ROOT,
    EpochClock,
    EpochProfile,
    InputGradOnly,
    SyncCounter,
    adversarial,
    bare_trainer,
    datamodule,
    default_device,
    device_name,
    make_dataset,
    make_net,
    segmentation_module,
    sync,
)

KINDS = ("none", "regenerate", "free", "input_grad", "free_pageable")
PLAIN_KINDS = ("none", "input_grad", "free", "free_pageable")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default=default_device())
    p.add_argument("--net", choices=NETS, default="unet", help="conv1x1: the host cost of the hooks alone")
    p.add_argument("--num-images", type=int, default=16, help="clean training images (the pool as many)")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--attack-batch", type=int, default=32)
    p.add_argument("--epochs", type=int, default=4, help="at least 3: epochs 1 .. epochs-2 are timed")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--kinds", default="none,regenerate,free", help=f"comma-separated, of {','.join(KINDS)}")
    p.add_argument("--loop", choices=("trainer", "plain"), default="trainer")
    p.add_argument("--bf16", action="store_true", help="bf16-mixed training and bf16 attack (GPU)")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--cudnn-benchmark", action="store_true", help="cuDNN times its kernels per shape")
    p.add_argument(
        "--on-device", action="store_true", help="dataset.on_device: batches gathered on the device"
    )
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--profile", action="store_true", help="torch.profiler over epoch 1 of each kind")
    p.add_argument("--top", type=int, default=10, help="rows per --profile table")
    p.add_argument("--count-syncs", action="store_true", help="host-device syncs in epoch 1 of each kind")
    p.add_argument("--product", action="append", default=[], help="src/train.py overrides (repeatable)")
    args = p.parse_args(argv)
    asked = [k for k in args.kinds.split(",") if k]
    allowed = PLAIN_KINDS if args.loop == "plain" else KINDS
    if not set(asked) <= set(allowed):
        p.error(f"--kinds={args.kinds}: choose from {','.join(allowed)} (--loop {args.loop})")
    args.kinds = [k for k in allowed if k in {"none", *asked}]  # none first: the others are read against it
    if args.epochs < 3:
        p.error("--epochs must be at least 3 (epochs 1 .. epochs-2 are timed)")
    if args.loop == "plain" and (args.profile or args.count_syncs):
        p.error("--profile / --count-syncs instrument the Trainer loop (--loop trainer)")
    return args


def run(kind: str, root: Path, args, extra=()) -> tuple[float, list[float], int]:
    """Seconds of ``trainer.fit``, of each steady epoch, and steps per epoch, for ``kind``; ``extra``
    callbacks go last (after the clock)."""
    module = segmentation_module(make_net(args.net), args.channels_last)
    dm = datamodule(root, args.size, args.batch, args.on_device, pin_memory=kind != "free_pageable")
    callbacks = [InputGradOnly()] if kind == "input_grad" else []
    if kind in ("regenerate", "free", "free_pageable"):
        mode = "regenerate" if kind == "regenerate" else "free"
        callbacks.append(adversarial(mode, args.bf16, args.attack_batch))
    clock = EpochClock(args.device)
    trainer = bare_trainer(
        args.device, args.bf16, [*callbacks, clock, *extra],
        max_epochs=args.epochs,
        reload_dataloaders_every_n_epochs=1,
        benchmark=args.cudnn_benchmark,  # set either way: the flag is global and outlives a run
        default_root_dir=root.parent,  # inside main()'s temporary folder
    )  # fmt: skip
    sync(args.device)
    start = time.perf_counter()
    trainer.fit(module, datamodule=dm)
    sync(args.device)
    return time.perf_counter() - start, clock.steady_epochs(), trainer.num_training_batches


def print_ratios(kinds, seconds: dict[str, float], what: str) -> None:
    ratios = ", ".join(f"{k} {seconds[k] / seconds['none']:.3f}" for k in kinds if k != "none")
    print(f"ratios to none, {what}: {ratios}")


def time_kinds(args, root: Path) -> dict[str, float]:
    run("none", root, argparse.Namespace(**{**vars(args), "epochs": 1}))  # warm-up: kernels, allocator
    fits: dict[str, list[float]] = {k: [] for k in args.kinds}
    epochs: dict[str, list[float]] = {k: [] for k in args.kinds}
    steps = {}
    for r in range(args.repeats):
        shift = r % len(args.kinds)
        for kind in args.kinds[shift:] + args.kinds[:shift]:  # rotated: no kind always runs first
            fit, steady, steps[kind] = run(kind, root, args)
            fits[kind].append(fit)
            epochs[kind].extend(steady)
    epoch = {k: statistics.median(v) for k, v in epochs.items()}
    fit = {k: statistics.median(v) for k, v in fits.items()}
    for kind in args.kinds:
        spans = ", ".join(f"{v:.3f}" for v in epochs[kind])
        print(
            f"{kind:>13}: {epoch[kind]:7.3f} s/epoch, {epoch[kind] / steps[kind] * 1e3:8.3f} ms/step "
            f"(median of {spans}); whole fit {fit[kind]:7.2f} s"
        )
    print_ratios(args.kinds, epoch, "per steady epoch")
    print_ratios(args.kinds, fit, "whole fit")
    for kind in args.kinds[1:]:
        print(f"{kind} minus none: {(epoch[kind] - epoch['none']) / steps['none'] * 1e3:+.3f} ms/step")
    return {f"{k}_ratio": epoch[k] / epoch["none"] for k in args.kinds[1:]}


def print_extra(kind: str, what: str, times: dict[str, float], base: dict[str, float], top: int) -> None:
    """The ``top`` ops whose self time in ``kind`` exceeds that in ``none`` most."""
    extra = sorted(((t - base.get(k, 0.0), k) for k, t in times.items()), reverse=True)[:top]
    print(
        f"    {what} self time, {kind} minus none: {sum(times.values()) - sum(base.values()):+.1f} ms; largest:"
    )
    for ms, name in extra:
        if ms > 0:
            print(f"      {ms:+9.2f} ms  {name[:90]}")


def profile_kinds(args, root: Path) -> dict[str, EpochProfile]:
    run("none", root, argparse.Namespace(**{**vars(args), "epochs": 1}))  # warm-up: kernels, allocator
    profiles: dict[str, EpochProfile] = {}
    for kind in args.kinds:  # each printed once measured: a run cut short keeps what it has
        profiles[kind] = prof = EpochProfile(args.device)
        run(kind, root, args, extra=(prof,))
        line = f"{kind:>13}: {prof.wall:7.3f} s wall, {prof.steps} steps, host ops {sum(prof.host.values()) / 1e3:6.3f} s"
        if prof.kernels:
            busy = sum(prof.kernels.values()) / 1e3
            line += f", device busy {busy:6.3f} s ({busy / prof.wall:.0%} of wall)"
        print(line)
        if kind != "none":
            base = profiles["none"]
            print(f"    wall ratio {kind} / none: {prof.wall / base.wall:.3f}")
            if prof.kernels:
                print_extra(kind, "device", prof.kernels, base.kernels, args.top)
            print_extra(kind, "host", prof.host, base.host, args.top)
        sys.stdout.flush()
    return profiles


def product_run(overrides: str, folder: Path) -> tuple[int, collections.Counter]:
    """Steps and sync places of epoch 1 of ``python src/train.py <overrides>`` (3 epochs)."""
    import json

    report = folder / "syncs.json"
    command = [
        sys.executable, str(ROOT / "src" / "train.py"), *shlex.split(overrides), "trainer.max_epochs=3",
        "robustness.enabled=false", "test=false", f"hydra.run.dir={folder}",
        "+callbacks.sync._target_=common.SyncCounter", f"+callbacks.sync.report={report}",
    ]  # fmt: skip
    path = os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])
    done = subprocess.run(
        command, cwd=ROOT, env={**os.environ, "PYTHONPATH": path}, capture_output=True, text=True
    )
    if done.returncode != 0 or not report.is_file():
        raise SystemExit(f"src/train.py {overrides} failed:\n{done.stderr[-3000:]}")
    counts = json.loads(report.read_text())
    return counts["steps"], collections.Counter(counts["where"])


def print_syncs(name: str, steps: int, where: collections.Counter) -> int:
    total = sum(where.values())
    print(f"{name:>13}: {total} syncs in epoch 1 ({steps} steps, epoch-end work included)")
    for place, n in where.most_common(8):
        print(f"{'':>15}{n:5d}  {place}")
    return total


def count_kinds(args, root: Path) -> dict[str, int]:
    if not torch.cuda.is_available():
        print("(no CUDA: nothing waits on the CPU, so every count is 0)")
    totals = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, overrides in enumerate(args.product):
            totals[overrides] = print_syncs(overrides, *product_run(overrides, Path(tmp) / f"run{i}"))
    if args.product:
        return totals
    for kind in args.kinds:
        counter = SyncCounter()
        run(kind, root, args, extra=(counter,))
        totals[kind] = print_syncs(kind, counter.steps, counter.where)
    return totals


# -- the plain loop (--loop plain) ---------------------------------------------------------------


class LoopTrainer:
    """What the producer's hooks read from a single-device Trainer, for a loop without one."""

    global_rank, world_size, is_global_zero, global_step = 0, 1, True, 0
    max_steps, should_stop = -1, False

    def __init__(self, datamodule, root: str, steps: int) -> None:
        self.datamodule, self.default_root_dir, self.loggers = datamodule, root, []
        self.num_training_batches, self.current_epoch, self.max_epochs = steps, 0, 1_000_000


def loop_batches(args, device: torch.device) -> list[dict[str, torch.Tensor]]:
    """One epoch of batches on the device: clean rows (index >= 0) then pool rows (index < 0), mixed."""
    g = torch.Generator().manual_seed(0)
    n = 2 * args.num_images
    images = torch.rand(n, 3, args.size, args.size, generator=g)
    masks = (torch.rand(n, args.size, args.size, generator=g) > 0.7).long()
    index = torch.cat([torch.arange(args.num_images), -1 - torch.arange(args.num_images)])
    order = torch.randperm(n, generator=g)  # mixed batches, as a shuffled loader gives
    return [
        {"image": images[b].to(device), "mask": masks[b].to(device), "index": index[b].to(device)}
        for b in order.split(args.batch)
    ]


def loop_epoch(kind, module, opt, batches, callback, trainer, bf16: bool) -> tuple[float, float]:
    """Seconds of one epoch of ``kind`` and of its epoch-end publish (device work included)."""
    device = module.device
    sync(device)
    start = time.perf_counter()
    if callback is not None:
        callback.on_train_epoch_start(trainer, module)
    for i, batch in enumerate(batches):
        batch = {**batch, "image": batch["image"].clone()}  # a fresh leaf per step, as a loader gives
        if kind == "input_grad":
            batch["image"].requires_grad_(True)
        elif callback is not None:
            callback.on_train_batch_start(trainer, module, batch, i)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = module.criterion(module(batch["image"]), batch["mask"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if kind == "input_grad":
            batch["image"].requires_grad_(False)
            batch["image"].grad = None
        elif callback is not None:
            callback.on_train_batch_end(trainer, module, None, batch, i)
    publish = 0.0
    if callback is not None:
        sync(device)
        steps_done = time.perf_counter()
        callback.on_train_epoch_end(trainer, module)
        sync(device)
        trainer.current_epoch += 1
        publish = time.perf_counter() - steps_done
    sync(device)
    return time.perf_counter() - start, publish


def plain_epochs(args, root: Path) -> dict[str, float]:
    """Median seconds per epoch of each kind on the plain loop, kinds rotated over the repeats; the
    free kinds publish to a pinning / a non-pinning DataModule (as in-process loading / workers)."""
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    batches = loop_batches(args, device)
    runs = {}
    for kind in args.kinds:
        module = segmentation_module(make_net(args.net), args.channels_last).to(device)
        module.train()
        callback = trainer = None
        if kind.startswith("free"):
            callback = adversarial("free", args.bf16)
            dm = datamodule(root, args.size, args.batch, pin_memory=kind == "free", pool=False)
            trainer = LoopTrainer(dm, str(root.parent), len(batches))
        runs[kind] = (module, module.configure_optimizers(), callback, trainer)  # Adam, no scheduler
    for kind, (module, opt, callback, trainer) in runs.items():  # warm-up: kernels, allocator
        loop_epoch(kind, module, opt, batches, callback, trainer, args.bf16)
    seconds: dict[str, list[float]] = collections.defaultdict(list)
    for r in range(args.repeats):
        shift = r % len(args.kinds)
        for kind in args.kinds[shift:] + args.kinds[:shift]:
            module, opt, callback, trainer = runs[kind]
            total, publish = loop_epoch(kind, module, opt, batches, callback, trainer, args.bf16)
            seconds[kind].append(total)
            if kind.startswith("free"):
                seconds[f"publish_{kind}"].append(publish)
    medians = {k: statistics.median(v) for k, v in seconds.items()}
    for kind in args.kinds:
        publish = f" (of which publish {medians[f'publish_{kind}']:.4f} s)" if kind.startswith("free") else ""
        print(
            f"{kind:>13}: {medians[kind]:.4f} s/epoch, {medians[kind] / len(batches) * 1e3:8.3f} ms/step{publish}"
        )
    print_ratios(args.kinds, medians, "per epoch of the plain loop")
    if {"free", "free_pageable"} <= set(args.kinds):
        pinned, pageable = medians["publish_free"], medians["publish_free_pageable"]
        print(f"publish pinned vs pageable: {pinned:.4f} s vs {pageable:.4f} s ({pageable / pinned:.1f}x)")
    return medians


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"device: {device_name(args.device)}; {args.num_images} clean + {args.num_images} pool images "
        f"{args.size}x{args.size}, batch {args.batch}, net {args.net}, {args.loop} loop, {args.epochs} epochs, "
        f"{args.repeats} repeats, bf16={args.bf16}, channels_last={args.channels_last}, "
        f"on_device={args.on_device}, cudnn.benchmark={args.cudnn_benchmark}",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as tmp:
        root = make_dataset(Path(tmp), args.num_images, args.size)
        if args.profile:
            return profile_kinds(args, root)
        if args.count_syncs or args.product:
            return count_kinds(args, root)
        if args.loop == "plain":
            return plain_epochs(args, root)
        return time_kinds(args, root)


if __name__ == "__main__":
    main()
