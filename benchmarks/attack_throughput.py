"""Attack throughput: our ``attacks.fgsm`` vs ``torchattacks.FGSM``, same model, batch and device,
timed side by side (interleaved repeats) in one run; prints images/s and the ratio.

    python benchmarks/attack_throughput.py --device cpu --batch 8 --size 64 --repeats 5
    python benchmarks/attack_throughput.py --device cuda --batch 32 --size 256 --bf16 --channels-last \
        --attack-batch 128      # GPU options: ours in bf16 autocast, channels_last, a larger batch

torchattacks is a dev dependency (pip install -e .[dev]); it always runs fp32 at --batch.
"""

from __future__ import annotations

import argparse
import statistics

import segmentation_models_pytorch as smp
import torch
from common import (  # first: puts this checkout's src/ on sys.path
    apply_threads,
    device_name,
    timed,
    timing_parser,
)

from advaug import attacks


def parse_args(argv=None) -> argparse.Namespace:
    p = timing_parser(
        __doc__, batch=8, repeats=5, batch_help="images per torchattacks call (and ours by default)"
    )
    p.add_argument("--attack-batch", type=int, default=None, help="images per call of ours (default --batch)")
    p.add_argument("--arch", default="Unet")
    p.add_argument("--eps", type=float, default=0.1)
    p.add_argument("--bf16", action="store_true", help="ours in bf16 autocast (GPU)")
    p.add_argument("--channels-last", action="store_true", help="ours with a channels_last model and input")
    return p.parse_args(argv)


def main(argv=None) -> dict[str, float]:
    args = parse_args(argv)
    apply_threads(args)
    import torchattacks

    torch.manual_seed(0)
    ours_batch = args.attack_batch or args.batch
    n = max(args.batch, ours_batch)
    model = smp.create_model(args.arch, encoder_name=args.encoder, encoder_weights=None, classes=2)
    model = model.to(args.device).eval()
    x = torch.rand(n, 3, args.size, args.size, device=args.device)
    y = (torch.rand(n, args.size, args.size, device=args.device) > 0.7).long()
    ours_model = model
    if args.channels_last:  # a copy so torchattacks keeps the default layout
        ours_model = smp.create_model(args.arch, encoder_name=args.encoder, encoder_weights=None, classes=2)
        ours_model.load_state_dict(model.state_dict())
        ours_model = ours_model.to(args.device, memory_format=torch.channels_last).eval()
    precision = "bf16" if args.bf16 else "fp32"
    ref = torchattacks.FGSM(model, eps=args.eps)

    def run_ours():
        for i in range(0, n, ours_batch):
            xb = x[i : i + ours_batch]
            if args.channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            attacks.fgsm(ours_model, xb, y[i : i + ours_batch], args.eps, precision=precision)

    def run_ref():
        for i in range(0, n, args.batch):
            ref(x[i : i + args.batch], y[i : i + args.batch])

    run_ours(), run_ref()  # warm-up (cuDNN autotune, allocator)
    t_ours, t_ref = [], []
    for _ in range(args.repeats):  # interleaved so background load hits both alike
        t_ours.append(timed(run_ours, args.device))
        t_ref.append(timed(run_ref, args.device))
    ours_ips, ref_ips = n / statistics.median(t_ours), n / statistics.median(t_ref)
    device = device_name(args.device)
    print(
        f"device: {device}; model {args.arch}/{args.encoder}; {n} images {args.size}x{args.size}; "
        f"median of {args.repeats} repeats"
    )
    print(
        f"ours        ({precision}, batch {ours_batch}{', channels_last' if args.channels_last else ''}): "
        f"{ours_ips:8.1f} img/s"
    )
    print(f"torchattacks (fp32, batch {args.batch}): {ref_ips:8.1f} img/s")
    print(f"ratio ours / torchattacks: {ours_ips / ref_ips:.2f}x")
    return {"ours_img_s": ours_ips, "torchattacks_img_s": ref_ips, "ratio": ours_ips / ref_ips}


if __name__ == "__main__":
    main()
