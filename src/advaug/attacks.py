"""Gradient-sign attacks on segmentation models: pure tensor functions, no Lightning.

``fgsm``     x + eps * sign(grad_x L)          (the paper's eq. 1: raises the loss)
``invfgsm``  x - eps * sign(grad_x L)          (the paper's eq. 3, InvFGSM: lowers the loss)
``pgd`` / ``invpgd``: the multi-step versions (step, project to the L-inf eps-ball, clamp).
With ``random_start`` the single-step methods are the "fast FGSM" of Wong et al. 2020 ("Fast is
better than free"): one step of ``step_size`` from a U(-eps, eps) start, projected to the ball.

Images are in [0, 1]; ``eps`` is on that scale (the paper's 0.0012 / 0.0118 / 0.1176 are
0.3 / 3 / 30 over 255) and may be a float or a per-sample tensor of shape (N,). Gradients are taken
with respect to the input only (parameters' ``.grad`` stays untouched), with the model in eval mode
by default, in fp32 (or bf16 on request) even inside an fp16 autocast region, and they work inside
Lightning's evaluation loops (``inference_mode`` is lifted for the attack).

The maths matches ``torchattacks.FGSM`` / ``FFGSM`` / ``PGD`` bit for bit on the CPU (see tests).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from advaug.rules import (
    SINGLE_STEP,
    check_attack,
    check_eps,
    check_eps_sampling,
    check_num_classes,
    check_precision,
    check_steps,
)

LossFn = Callable[[Tensor, Tensor], Tensor]
# +1 raises the loss (adversarial), -1 lowers it (the paper's "inverse", helpful noise)
DIRECTION = {"fgsm": 1, "pgd": 1, "invfgsm": -1, "invpgd": -1}
# the buffers a train-mode forward of a normalisation layer updates
RUNNING_STATS = ("running_mean", "running_var", "num_batches_tracked")


@dataclass
class AttackResult:
    """Perturbed images plus what the logs report about the attack."""

    images: Tensor
    zero_grad_fraction: float  # share of input pixels whose gradient was exactly 0 (last step)


def sample_eps(
    eps: float, n: int, sampling: str = "fixed", generator: torch.Generator | None = None, device=None
) -> Tensor:
    """Per-sample eps of shape (n,): ``fixed`` = eps everywhere; ``uniform`` = sigma ~ U(0, eps]."""
    check_eps(eps)
    if check_eps_sampling(sampling) == "fixed":
        return torch.full((n,), float(eps), device=device)
    u = torch.rand(n, generator=generator, device=generator.device if generator is not None else "cpu")
    return ((1.0 - u) * float(eps)).to(device)  # 1 - U[0,1) lies in (0, 1]


@contextlib.contextmanager
def eval_mode(model: nn.Module, enabled: bool = True) -> Iterator[None]:
    """Put ``model`` in eval mode (BatchNorm/Dropout frozen) and restore each module's flag after.

    ``enabled=False`` leaves each module's mode alone (in train mode BatchNorm normalises with
    the batch's statistics) but puts the running statistics back afterwards: an attack or a
    measurement never changes the model it is run on."""
    if not enabled:
        with running_stats_kept(model):
            yield
        return
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, flag in flags:
            module.training = flag


@contextlib.contextmanager
def running_stats_kept(model: nn.Module) -> Iterator[None]:
    """Restore the normalisation layers' running statistics (mean, variance, batch count) on
    exit: train-mode forwards inside still use batch statistics but do not update them."""
    saved = [
        (buffer, buffer.clone())
        for module in model.modules()
        if getattr(module, "track_running_stats", False)
        for buffer in (getattr(module, name, None) for name in RUNNING_STATS)
        if isinstance(buffer, Tensor)
    ]
    try:
        yield
    finally:
        with torch.no_grad():
            for buffer, value in saved:
                buffer.copy_(value)


def _autocast(x: Tensor, precision: str) -> contextlib.AbstractContextManager:
    if check_precision(precision) == "fp32":  # also switches off an enclosing fp16 autocast
        return torch.autocast(device_type=x.device.type, enabled=False)
    return torch.autocast(device_type=x.device.type, dtype=torch.bfloat16)


def _broadcast(eps: float | Tensor, x: Tensor) -> float | Tensor:
    if isinstance(eps, Tensor) and eps.ndim > 0:
        return eps.to(device=x.device, dtype=x.dtype).view(-1, *([1] * (x.ndim - 1)))
    return float(eps)


def _signed(step: float | Tensor, sign: int) -> float | Tensor:
    return step if sign > 0 else -step


def _zero_fraction(grad: Tensor) -> float:
    return 1.0 - torch.count_nonzero(grad).item() / max(grad.numel(), 1)


def input_gradient(
    model: nn.Module, x: Tensor, y: Tensor, loss_fn: LossFn | None = None, precision: str = "fp32"
) -> Tensor:
    """grad_x L(model(x), y) for the batch-mean loss; no parameter receives a gradient."""
    loss_fn = loss_fn or F.cross_entropy
    with torch.inference_mode(False), torch.enable_grad():
        x = x.detach().clone().requires_grad_(True)
        # labels made under inference_mode (Lightning's eval loops, a device copy there) cannot
        # be saved for the backward: an ordinary copy can
        y = y.clone() if y.is_inference() else y.detach()
        with _autocast(x, precision):
            logits = model(x)
        if logits.ndim == 4:
            check_num_classes(logits.shape[1], "the model's output channels")
        loss = loss_fn(logits.float(), y)
        (grad,) = torch.autograd.grad(loss, x, retain_graph=False, create_graph=False)
    return grad.detach()


def signed_step(
    x: Tensor, grad: Tensor, eps: float | Tensor, method: str, clamp: tuple[float, float] = (0.0, 1.0)
) -> Tensor:
    """The single step of FGSM / InvFGSM from a given input gradient: ``clamp(x ± eps * sign(grad))``
    (``+`` for ``fgsm``, ``-`` for ``invfgsm``); ``eps`` a float or a per-sample (N,) tensor."""
    # (-e) * s == -(e * s) exactly, so InvFGSM stays bit-equal to torchattacks' targeted FGSM
    return torch.clamp(x + _signed(_broadcast(eps, x), DIRECTION[method]) * grad.sign(), min=clamp[0], max=clamp[1])


def predicted_labels(model: nn.Module, x: Tensor, use_eval_mode: bool = True) -> Tensor:
    """The model's own prediction (argmax), used as the label that leaks no ground truth."""
    with eval_mode(model, use_eval_mode), torch.no_grad():
        return model(x).argmax(1)


def _random_start(
    x: Tensor, e: float | Tensor, clamp: tuple[float, float], generator: torch.Generator | None
) -> Tensor:
    """``clamp(x + U(-eps, eps))``: ``(rand * 2 - 1) * eps`` is bit-equal to torchattacks'
    ``uniform_(-eps, eps)`` on the CPU and also takes a per-sample eps."""
    noise = torch.rand(x.shape, generator=generator, device=generator.device if generator else x.device)
    return torch.clamp(x + (noise.to(x.device) * 2 - 1) * e, min=clamp[0], max=clamp[1])


def _project(adv: Tensor, x: Tensor, e: float | Tensor, clamp: tuple[float, float]) -> Tensor:
    """Back into the L-inf eps-ball around ``x`` and the image range."""
    if isinstance(e, Tensor):
        delta = torch.max(torch.min(adv - x, e), -e)
    else:
        delta = torch.clamp(adv - x, min=-e, max=e)
    return torch.clamp(x + delta, min=clamp[0], max=clamp[1])


def perturb(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: float | Tensor,
    method: str = "fgsm",
    *,
    steps: int = 10,
    step_size: float | None = None,
    random_start: bool | None = None,
    loss_fn: LossFn | None = None,
    use_eval_mode: bool = True,
    precision: str = "fp32",
    clamp: tuple[float, float] = (0.0, 1.0),
    generator: torch.Generator | None = None,
) -> AttackResult:
    """Run ``method`` (one of :data:`advaug.rules.ATTACKS`) on a batch and report the zero-gradient share.

    ``random_start`` starts from ``clamp(x + U(-eps, eps))`` (drawn from ``generator``, else the
    global generator of ``x``'s device); None is each method's usual choice: on for PGD (Madry et
    al.), off for FGSM / InvFGSM (the paper's eq. 1 / 3).
    PGD: ``step_size`` defaults to 2.5 * eps / steps (Madry et al.).
    FGSM / InvFGSM ignore ``steps``; their ``step_size`` defaults to eps, so that without random
    start this is exactly the paper's step and the switch changes nothing else; Wong et al. (and
    ``torchattacks.FFGSM``'s 10/255 at eps 8/255) use 1.25 * eps for adversarial *training*: pass
    ``step_size=1.25 * eps`` for that. ``eps`` may be a float or a per-sample (N,) tensor.
    """
    check_attack(method)
    check_eps(eps)
    sign = DIRECTION[method]
    single = method in SINGLE_STEP
    random_start = not single if random_start is None else bool(random_start)
    x = x.detach()
    e = _broadcast(eps, x)
    with eval_mode(model, use_eval_mode):
        if single and not random_start and step_size is None:
            grad = input_gradient(model, x, y, loss_fn, precision)
            return AttackResult(signed_step(x, grad, e, method, clamp).detach(), _zero_fraction(grad))
        if single:  # fast FGSM: one projected step, from the random start if asked
            steps, alpha = 1, e if step_size is None else _broadcast(step_size, x)
        else:
            check_steps(steps)
            alpha = _broadcast(step_size, x) if step_size is not None else e * (2.5 / steps)
        adv = _random_start(x, e, clamp, generator) if random_start else x.clone()
        for _ in range(steps):
            grad = input_gradient(model, adv, y, loss_fn, precision)
            adv = _project(adv.detach() + _signed(alpha, sign) * grad.sign(), x, e, clamp).detach()
        return AttackResult(adv, _zero_fraction(grad))


def fgsm(model: nn.Module, x: Tensor, y: Tensor, eps: float | Tensor, **kw) -> Tensor:
    """FGSM: ``clamp(x + eps * sign(grad_x L(model(x), y)), 0, 1)``."""
    return perturb(model, x, y, eps, "fgsm", **kw).images


def invfgsm(model: nn.Module, x: Tensor, y: Tensor, eps: float | Tensor, **kw) -> Tensor:
    """InvFGSM: ``clamp(x - eps * sign(grad_x L(model(x), y)), 0, 1)`` (moves toward lower loss)."""
    return perturb(model, x, y, eps, "invfgsm", **kw).images


def pgd(model: nn.Module, x: Tensor, y: Tensor, eps: float | Tensor, **kw) -> Tensor:
    """Projected gradient ascent on the loss within the L-inf eps-ball (multi-step FGSM)."""
    return perturb(model, x, y, eps, "pgd", **kw).images


def invpgd(model: nn.Module, x: Tensor, y: Tensor, eps: float | Tensor, **kw) -> Tensor:
    """Projected gradient descent on the loss within the L-inf eps-ball (multi-step InvFGSM)."""
    return perturb(model, x, y, eps, "invpgd", **kw).images
