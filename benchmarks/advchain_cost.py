"""AdvChain's cost per attacked image against one FGSM attack on the same batch and model: FGSM
(one forward + backward), the whole chain at n_iter 0 (random transforms) and 1 (the default),
its photometric and geometric parts, and the consistency term of a training step, timed side by
side in one run (interleaved repeats, the order rotated each repeat); prints ms per image and the
ratios to FGSM of the medians and of the bests (the best is the steadier under background load).

    python benchmarks/advchain_cost.py --device cpu --batch 8 --size 64 --repeats 5
    python benchmarks/advchain_cost.py --device cuda --batch 32 --size 128 --repeats 10
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable

import torch
from common import (  # first: puts this checkout's src/ on sys.path
    default_device,
    device_name,
    make_net,
    timed,
)

from advaug.advchain import ChainBudgets, ChainConsistency, ChainObjective, optimise_chain
from advaug.attacks import perturb


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default=default_device())
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--size", type=int, default=64, help="image height = width")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--encoder", default="resnet18")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    return p.parse_args(argv)


def main(argv=None) -> dict[str, float]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    net = make_net("unet", args.encoder).to(args.device).eval()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(args.batch, 3, args.size, args.size, generator=g).to(args.device)
    y = (torch.rand(args.batch, args.size, args.size, generator=g) > 0.8).long().to(args.device)
    objective = ChainObjective()
    chains = {
        "advchain n_iter 0": (ChainBudgets(), ChainObjective(n_iter=0)),
        "advchain n_iter 1": (ChainBudgets(), objective),
        "photometric": (ChainBudgets(transforms=("noise", "bias")), objective),
        "geometric": (ChainBudgets(transforms=("elastic", "affine")), objective),
    }

    def chain(budgets: ChainBudgets, obj: ChainObjective) -> Callable[[], None]:
        # measure=False: what the pool producer needs beyond this is one forward for its log
        return lambda: optimise_chain(net, x, budgets, obj, generator=torch.Generator().manual_seed(1), measure=False)

    term = ChainConsistency(ChainBudgets(), objective)

    def consistency() -> None:  # the extra cost of a training step: the term and its backward
        net.train()
        with torch.no_grad():
            logits = net(x)
        term(net, net, x, logits).backward()
        net.zero_grad(set_to_none=True)
        net.eval()

    cases = {"fgsm": lambda: perturb(net, x, y, 0.03, "fgsm")}
    cases.update({name: chain(*c) for name, c in chains.items()})
    cases["consistency term"] = consistency
    for run in cases.values():  # warm-up
        run()
    times: dict[str, list[float]] = {name: [] for name in cases}
    names = list(cases)
    for i in range(args.repeats):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            times[name].append(timed(cases[name], args.device))
    medians = {n: statistics.median(t) for n, t in times.items()}
    bests = {n: min(t) for n, t in times.items()}
    print(
        f"device: {device_name(args.device)}; UNet/{args.encoder}; batch {args.batch} at {args.size}x{args.size}; "
        f"{args.repeats} repeats"
    )
    print(f"{'case':>18} | {'ms / image':>10} | {'best':>8} | ratio to fgsm: median, best")
    result: dict[str, float] = {}
    for name in cases:
        per, best = medians[name] / args.batch * 1e3, bests[name] / args.batch * 1e3
        ratio, best_ratio = medians[name] / medians["fgsm"], bests[name] / bests["fgsm"]
        print(f"{name:>18} | {per:10.2f} | {best:8.2f} | {ratio:.2f}, {best_ratio:.2f}")
        key = name.replace(" ", "_")
        result[f"{key}_ms_per_image"] = per
        if name != "fgsm":
            result[f"{key}_ratio"], result[f"{key}_best_ratio"] = ratio, best_ratio
    return result


if __name__ == "__main__":
    main()
