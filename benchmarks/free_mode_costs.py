"""Free mode's cost, part by part, on a plain training loop: no Trainer and no DataLoader (both
are the same with and without free mode), so the parts are timed with far less noise than the
whole epochs of ``epoch_overhead.py``. Each "epoch" is ``2 * num_images / batch`` steps of the
same smp UNet (``SegmentationModule``'s forward and loss, Adam), on random batches kept on the
device, the clean set plus a pool of the same size as in ``epoch_overhead.py``. Kinds:

* ``plain``: forward, loss, backward, optimizer step.
* ``input_grad``: the same, with the batch image's gradient computed and then dropped (the
  backward part of free mode: the first convolution's input gradient and the casts before it).
* ``free``: the same, with the real ``AdversarialAugmentation(mode="free")`` hooks around each
  step and its epoch-end publish (the pool to a real DataModule, the loss statistics), whose
  time is also printed on its own. The DataModule pins the pool, as in training on a CUDA
  device with an in-process loader (``dataset.num_workers=0``, the default).
* ``free_pageable``: the same with ``pin_memory=False``: the pool's copy to the host goes to
  pageable memory, as it does with loader workers (the publish time of the two, side by side).

Prints each kind's median seconds per epoch over ``--repeats`` (kinds interleaved) and the ratios
to ``plain``; the free / input_grad split says whether the backward or the hooks cost. ``--grid``
repeats it for NCHW and channels_last, each with ``cudnn.benchmark`` off and on.
``--profile-publish`` profiles one more publish and prints its top ops::

    python benchmarks/free_mode_costs.py --device cpu --num-images 32 --size 64 --batch 8
    python benchmarks/free_mode_costs.py --device cuda --num-images 512 --size 128 --batch 16 \
        --bf16 --grid
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import segmentation_models_pytorch as smp  # noqa: E402
import torch  # noqa: E402
from bench_common import device_name, sync  # noqa: E402
from epoch_overhead import make_dataset  # noqa: E402

from advaug.callbacks import AdversarialAugmentation  # noqa: E402
from advaug.data import SegmentationDataModule  # noqa: E402
from advaug.models import SegmentationModule  # noqa: E402

KINDS = ("plain", "input_grad", "free", "free_pageable")
FREE = ("free", "free_pageable")


class LoopTrainer:
    """What the callback's hooks read from a single-device Trainer, for a loop without one."""

    global_rank, world_size, is_global_zero, global_step = 0, 1, True, 0
    max_steps, should_stop = -1, False

    def __init__(self, datamodule, root: str, steps: int) -> None:
        self.datamodule, self.default_root_dir, self.loggers = datamodule, root, []
        self.num_training_batches, self.current_epoch, self.max_epochs = steps, 0, 1_000_000


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--num-images", type=int, default=32, help="clean training images (the pool as many)")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--bf16", action="store_true", help="bf16 autocast (GPU)")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--cudnn-benchmark", action="store_true", help="torch.backends.cudnn.benchmark = True")
    p.add_argument("--grid", action="store_true", help="NCHW / channels_last x cudnn.benchmark off / on")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--profile-publish", action="store_true", help="torch.profiler over one publish")
    return p.parse_args(argv)


def make_batches(args, device: torch.device) -> list[dict[str, torch.Tensor]]:
    """One epoch of batches on the device: clean rows (index >= 0) then pool rows (index < 0)."""
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


def epoch(kind, module, opt, batches, callback, trainer, args, profiler=None) -> tuple[float, float]:
    """Seconds of one epoch of ``kind`` and of its epoch-end publish (device work included);
    ``profiler`` (a torch.profiler context) runs around the publish."""
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
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
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
        with profiler or contextlib.nullcontext():
            callback.on_train_epoch_end(trainer, module)
            sync(device)
        trainer.current_epoch += 1
        publish = time.perf_counter() - steps_done
    sync(device)
    return time.perf_counter() - start, publish


def measure(args, dms, root: str) -> dict[str, float]:
    """Median seconds per epoch of each kind, interleaved over the repeats."""
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    batches = make_batches(args, device)
    runs = {}
    for kind in KINDS:
        torch.manual_seed(0)
        net = smp.create_model("Unet", encoder_name="resnet18", encoder_weights=None, classes=2)
        module = SegmentationModule(
            net,
            2,
            optimizer=lambda params: torch.optim.Adam(params, lr=1e-3),
            channels_last=args.channels_last,
        ).to(device)
        module.train()
        callback = trainer = None
        if kind in FREE:
            callback = AdversarialAugmentation(
                "fgsm", eps=0.1, mode="free", precision="bf16" if args.bf16 else "fp32", figure_samples=0
            )
            trainer = LoopTrainer(dms[kind], root, len(batches))
        runs[kind] = (module, module.configure_optimizers(), callback, trainer)  # Adam, no scheduler
    for kind, (module, opt, callback, trainer) in runs.items():  # warm-up: kernels, allocator
        epoch(kind, module, opt, batches, callback, trainer, args)
    seconds: dict[str, list[float]] = {k: [] for k in (*KINDS, *(f"publish_{k}" for k in FREE))}
    for r in range(args.repeats):
        shift = r % len(KINDS)
        for kind in KINDS[shift:] + KINDS[:shift]:  # rotated: no kind always runs first
            module, opt, callback, trainer = runs[kind]
            total, publish = epoch(kind, module, opt, batches, callback, trainer, args)
            seconds[kind].append(total)
            if kind in FREE:
                seconds[f"publish_{kind}"].append(publish)
    if args.profile_publish:
        profile_publish(args, batches, runs["free"])
    return {k: statistics.median(v) for k, v in seconds.items()}


def profile_publish(args, batches, run) -> None:
    """One more ``free`` epoch with torch.profiler around its publish: the top ops by host time."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if args.device.startswith("cuda") else [])
    module, opt, callback, trainer = run
    prof = profile(activities=activities)
    epoch("free", module, opt, batches, callback, trainer, args, profiler=prof)
    print(prof.key_averages().table(sort_by="cpu_time_total", row_limit=14), flush=True)


def report(args, medians: dict[str, float]) -> None:
    layout = "channels_last" if args.channels_last else "NCHW"
    print(
        f"{layout}, cudnn.benchmark={args.cudnn_benchmark}: "
        + ", ".join(f"{k} {medians[k]:.4f} s" for k in KINDS)
        + f" (of which publish {medians['publish_free']:.4f} s pinned, "
        f"{medians['publish_free_pageable']:.4f} s pageable)"
        + f"; input_grad / plain {medians['input_grad'] / medians['plain']:.3f}, "
        f"free / plain {medians['free'] / medians['plain']:.3f} "
        f"(pageable {medians['free_pageable'] / medians['plain']:.3f}), "
        f"free / input_grad {medians['free'] / medians['input_grad']:.3f}",
        flush=True,
    )


def main(argv=None) -> dict[tuple[bool, bool], dict[str, float]]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    steps = -(-2 * args.num_images // args.batch)
    print(
        f"device: {device_name(args.device)}; epochs of {steps} steps ({args.num_images} clean + "
        f"{args.num_images} pool images {args.size}x{args.size}, batch {args.batch}), bf16={args.bf16}, "
        f"median of {args.repeats}",
        flush=True,
    )
    grid = (
        [(cl, bm) for cl in (False, True) for bm in (False, True)]
        if args.grid
        else [(args.channels_last, args.cudnn_benchmark)]
    )
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = make_dataset(Path(tmp), args.num_images, args.size)
        dms = {}
        for kind, pin in zip(FREE, (True, False), strict=True):
            dms[kind] = SegmentationDataModule(
                root=str(root), image_size=args.size, batch_size=args.batch, pin_memory=pin
            )
            dms[kind].prepare_data()
            dms[kind].setup("fit")
        for channels_last, benchmark in grid:
            run_args = argparse.Namespace(**{**vars(args), "channels_last": channels_last,
                                             "cudnn_benchmark": benchmark})  # fmt: skip
            results[(channels_last, benchmark)] = medians = measure(run_args, dms, tmp)
            report(run_args, medians)
    return results


if __name__ == "__main__":
    main()
