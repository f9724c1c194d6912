"""Training img/s of our Lightning ``SegmentationModule`` vs a hand-written PyTorch loop, side by side.

Same smp UNet (same init), same in-memory batches on the same device, same optimizer and loss;
only the loop differs. Prints both rates and their ratio (goal: Lightning >= 0.95x)::

    python benchmarks/train_throughput.py --device cpu --size 64 --batch 8 --steps 10
    python benchmarks/train_throughput.py --device cuda --size 128 --batch 16 --bf16 --channels-last
    python benchmarks/train_throughput.py --device cuda --bf16 --channels-last --compile
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import lightning as L  # noqa: E402
import segmentation_models_pytorch as smp  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from bench_common import device_name, product_log_every, sync  # noqa: E402

from advaug.models.segmentation import SegmentationModule  # noqa: E402


def make_net(args: argparse.Namespace) -> torch.nn.Module:
    torch.manual_seed(0)
    return smp.create_model("Unet", encoder_name=args.encoder, encoder_weights=None, in_channels=3, classes=2)


def make_batches(args: argparse.Namespace, device: torch.device) -> list[dict[str, torch.Tensor]]:
    """Kept on the device, as for small data sets: the benchmark measures the loop, not loading."""
    g = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(args.distinct_batches):
        image = torch.rand(args.batch, 3, args.size, args.size, generator=g)
        mask = (torch.rand(args.batch, args.size, args.size, generator=g) > 0.7).long()
        batches.append({"image": image.to(device), "mask": mask.to(device)})
    return batches


def plain_loop(args: argparse.Namespace, device: torch.device, batches: list) -> float:
    """The reference: forward, CE loss, backward, Adam step. Returns img/s after warm-up."""
    net = make_net(args).to(device)
    if args.channels_last:
        net = net.to(memory_format=torch.channels_last)
    model = torch.compile(net) if args.compile else net
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    model.train()
    start = 0.0
    for step in range(args.warmup + args.steps):
        if step == args.warmup:
            sync(device)
            start = time.perf_counter()
        batch = batches[step % len(batches)]
        x = batch["image"]
        if args.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
            loss = F.cross_entropy(model(x), batch["mask"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    sync(device)
    return args.steps * args.batch / (time.perf_counter() - start)


class _Clock(L.Callback):
    """Starts the clock at the first step after warm-up, stops it when training ends."""

    def __init__(self, warmup: int, device: torch.device) -> None:
        self.warmup, self.device, self.start, self.seconds = warmup, device, 0.0, 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.warmup and not self.start:
            sync(self.device)
            self.start = time.perf_counter()

    def on_train_end(self, trainer, pl_module) -> None:
        sync(self.device)
        self.seconds = time.perf_counter() - self.start


def lightning_loop(args: argparse.Namespace, device: torch.device, batches: list) -> float:
    """Our module under a Trainer logging as often as conf/trainer (``log_every_n_steps``) but
    with no logger, checkpoint or progress bar: the loop only."""
    net = make_net(args)
    module = SegmentationModule(
        net,
        num_classes=2,
        optimizer=functools.partial(torch.optim.Adam, lr=1e-3),
        channels_last=args.channels_last,
    )
    if args.compile:
        module.net = torch.compile(module.net)
    clock = _Clock(args.warmup, device)
    steps = args.warmup + args.steps
    loader = [batches[i % len(batches)] for i in range(steps)]  # already batched, on the device
    trainer = L.Trainer(
        log_every_n_steps=product_log_every(),
        accelerator="gpu" if device.type == "cuda" else "cpu",
        devices=[device.index or 0] if device.type == "cuda" else 1,
        precision="bf16-mixed" if args.bf16 else "32-true",
        max_steps=steps,
        max_epochs=1,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        inference_mode=False,
        callbacks=[clock],
    )
    trainer.fit(module, train_dataloaders=torch.utils.data.DataLoader(loader, batch_size=None))
    return args.steps * args.batch / clock.seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=50, help="timed steps (after --warmup)")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--distinct-batches", type=int, default=4)
    p.add_argument("--encoder", default="resnet18")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast (both loops)")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--compile", action="store_true", help="torch.compile the network (both loops)")
    p.add_argument(
        "--repeats", type=int, default=2, help="alternate the two loops this many times; best of each"
    )
    args = p.parse_args()

    device = torch.device(args.device)
    batches = make_batches(args, device)
    plain, lit = [], []
    for _ in range(args.repeats):  # alternate, so drifting clocks / shared cores hit both alike
        plain.append(plain_loop(args, device, batches))
        lit.append(lightning_loop(args, device, batches))
    name = device_name(device)
    print(
        f"device={name} size={args.size} batch={args.batch} steps={args.steps} bf16={args.bf16} "
        f"channels_last={args.channels_last} compile={args.compile} torch={torch.__version__}"
    )
    print(f"plain PyTorch loop : {max(plain):8.1f} img/s  (runs: {', '.join(f'{v:.1f}' for v in plain)})")
    print(f"Lightning module   : {max(lit):8.1f} img/s  (runs: {', '.join(f'{v:.1f}' for v in lit)})")
    print(f"ratio Lightning / plain = {max(lit) / max(plain):.3f}")


if __name__ == "__main__":
    main()
