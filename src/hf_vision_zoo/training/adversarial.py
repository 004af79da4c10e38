"""L-infinity adversarial attacks in pixel space, for fast adversarial training and robust-accuracy evaluation.

- `fgsm_random_start`: one FGSM step from a uniform random start in the epsilon ball, the "fast" adversarial
  training of Wong, Rice & Kolter, *Fast is better than free: revisiting adversarial training* (ICLR 2020). It is the
  attack of the Brain-Score CrossViT recipe (Berrios & Deza, *Joint rotational invariance and adversarial training of
  a dual-stream Transformer yields state of the art Brain-Score for Area V4*, BSW 2022; official code
  github.com/williamberrios/BrainScore-Transformers, `Fast-Adversarial-Training/Code/train_adv.py`): epsilon 2/255,
  step 2.5/255, a fresh uniform start for every batch.
- `pgd`: projected gradient descent (Madry et al. 2018) with a random start, `steps` signed-gradient steps of size
  `alpha`, projected back onto the epsilon ball and the valid pixel range after each step; optional restarts keep,
  per image, the first restart that fools the model (as the official `validate_pgd`).

Models take *normalised* input (`(pixels - mean) / std`, the image processor's output), while the threat model lives
in pixel space: `epsilon` and `alpha` are in [0, 1] pixel units (2/255 = two grey levels) and the perturbed image
stays inside [0, 1]. Every function takes the processor's `mean` and `std`, converts to pixels, attacks there, and
returns normalised input again. Gradients are taken with `torch.autograd.grad` with respect to the perturbation
only, so the model's parameter gradients (e.g. ones being accumulated over micro-batches) are left untouched.

Difference from the official training code: it clamps the perturbed image (`(x + noise).clamp(0, 1)`) inside the
graph, so pixels at the boundary get no gradient; we follow Wong et al.'s code and first clip the perturbation to
the valid range (`delta` in `[-x, 1 - x]`), then differentiate. The final training input is the same function of the
gradient sign (`clip(x + clip(delta + alpha * sign(g), -eps, eps), 0, 1)`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

ModelFn = Callable[[torch.Tensor], torch.Tensor]


class AttackError(ValueError):
    """Invalid attack settings (negative epsilon, no steps, a non-positive step size, bad mean/std)."""


def parse_pixel_value(text: str | float) -> float:
    """A pixel-space amount from the command line: a number (0.0078) or a fraction such as `2/255`."""
    if isinstance(text, (int, float)):
        return float(text)
    value = str(text).strip()
    try:
        if "/" in value:
            num, den = value.split("/", 1)
            return float(num) / float(den)
        return float(value)
    except (ValueError, ZeroDivisionError):
        import argparse

        raise argparse.ArgumentTypeError(f"{text!r} is not a number or a fraction like 2/255") from None


def check_attack_settings(epsilon: float, alpha: float | None = None, steps: int | None = None,
                          restarts: int | None = None) -> None:
    """Raise AttackError with a clear message for unusable settings."""
    if not isinstance(epsilon, (int, float)) or math.isnan(epsilon) or epsilon < 0:
        raise AttackError(f"epsilon must be a number >= 0 (in [0, 1] pixel units, e.g. 2/255), got {epsilon!r}")
    if epsilon > 1:
        raise AttackError(f"epsilon is in [0, 1] pixel units (2/255 = two grey levels); {epsilon} > 1 would allow "
                          f"any image. Did you mean {epsilon}/255?")
    if alpha is not None and (not isinstance(alpha, (int, float)) or math.isnan(alpha) or alpha <= 0):
        raise AttackError(f"the step size alpha must be > 0 (pixel units), got {alpha!r}")
    if steps is not None and (not isinstance(steps, int) or isinstance(steps, bool) or steps < 1):
        raise AttackError(f"PGD steps must be an integer >= 1, got {steps!r}")
    if restarts is not None and (not isinstance(restarts, int) or isinstance(restarts, bool) or restarts < 1):
        raise AttackError(f"PGD restarts must be an integer >= 1, got {restarts!r}")


def _stats(values: Sequence[float] | torch.Tensor, like: torch.Tensor, what: str) -> torch.Tensor:
    t = torch.as_tensor(values, dtype=torch.float32, device=like.device).flatten()
    if t.numel() not in (1, like.shape[1]):
        raise AttackError(f"normalisation {what} has {t.numel()} values but the input has {like.shape[1]} channels")
    if what == "std" and bool((t <= 0).any()):
        raise AttackError(f"normalisation std must be > 0, got {t.tolist()}")
    return t.view(1, -1, 1, 1)


def to_pixels(pixel_values: torch.Tensor, mean, std) -> torch.Tensor:
    """Normalised input -> pixels in [0, 1] units (`x * std + mean`)."""
    return pixel_values.float() * _stats(std, pixel_values, "std") + _stats(mean, pixel_values, "mean")


def to_normalized(pixels: torch.Tensor, mean, std) -> torch.Tensor:
    """Pixels in [0, 1] units -> the model's normalised input."""
    return (pixels - _stats(mean, pixels, "mean")) / _stats(std, pixels, "std")


def logits_of(model: ModelFn | torch.nn.Module, pixel_values: torch.Tensor) -> torch.Tensor:
    """Logits of a transformers image classifier (`.logits`) or of any callable returning a tensor."""
    try:
        out = model(pixel_values=pixel_values) if isinstance(model, torch.nn.Module) else model(pixel_values)
    except TypeError:
        out = model(pixel_values)
    out = getattr(out, "logits", out)
    if isinstance(out, (tuple, list)):
        out = out[0]
    return out.float()


def _check_inputs(pixel_values: torch.Tensor, labels: torch.Tensor) -> None:
    if not isinstance(pixel_values, torch.Tensor) or pixel_values.dim() != 4:
        raise AttackError(f"pixel_values must be a (batch, channels, height, width) tensor, got "
                          f"{getattr(pixel_values, 'shape', type(pixel_values))}")
    if pixel_values.shape[0] == 0:
        raise AttackError("cannot attack an empty batch")
    if not isinstance(labels, torch.Tensor) or labels.shape[0] != pixel_values.shape[0]:
        raise AttackError(f"labels must be a tensor with one row per image ({pixel_values.shape[0]}), got "
                          f"{getattr(labels, 'shape', type(labels))}")


def _uniform(shape, epsilon: float, device, generator: torch.Generator | None) -> torch.Tensor:
    noise = torch.rand(shape, generator=generator, dtype=torch.float32)  # CPU generator, then moved
    return (noise * 2 - 1).mul_(epsilon).to(device)


def _ascent_direction(model, pixels: torch.Tensor, delta: torch.Tensor, targets: torch.Tensor, mean, std):
    delta = delta.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = logits_of(model, to_normalized(pixels + delta, mean, std))
        loss = F.cross_entropy(logits, targets.to(logits.device))
        (grad,) = torch.autograd.grad(loss, delta)
    return grad.sign()


def fgsm_random_start(model: ModelFn | torch.nn.Module, pixel_values: torch.Tensor, targets: torch.Tensor, *,
                      epsilon: float, alpha: float | None = None, mean=(0.0,), std=(1.0,),
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """Fast adversarial example (Wong et al. 2020): `delta ~ U(-eps, eps)`, clipped so `x + delta` is in [0, 1];
    one step `delta += alpha * sign(grad)`; clip to `[-eps, eps]` and to the valid range. Returns the normalised
    adversarial input (detached). `targets` are class indices or soft targets (rows of probabilities).
    `alpha` defaults to 1.25 * epsilon (Wong et al.; the recipe's 2.5/255 for epsilon 2/255)."""
    alpha = 1.25 * epsilon if alpha is None else alpha
    check_attack_settings(epsilon, alpha)
    _check_inputs(pixel_values, targets)
    pixels = to_pixels(pixel_values.detach(), mean, std)
    if epsilon == 0:
        return to_normalized(pixels, mean, std)
    delta = _uniform(pixels.shape, epsilon, pixels.device, generator)
    delta = torch.clamp(delta, -pixels, 1 - pixels)
    delta = delta + alpha * _ascent_direction(model, pixels, delta, targets, mean, std)
    delta = torch.clamp(delta, -epsilon, epsilon)
    return to_normalized(torch.clamp(pixels + delta, 0, 1), mean, std).detach()


def pgd(model: ModelFn | torch.nn.Module, pixel_values: torch.Tensor, labels: torch.Tensor, *, epsilon: float,
        steps: int = 10, alpha: float | None = None, mean=(0.0,), std=(1.0,), random_start: bool = True,
        restarts: int = 1, generator: torch.Generator | None = None) -> torch.Tensor:
    """L-infinity PGD: from a uniform random start in the epsilon ball (or from the image), `steps` times
    `delta = clip(delta + alpha * sign(grad), -eps, eps)` with `x + delta` kept in [0, 1]. With `restarts > 1` an
    image keeps the first restart whose result the model misclassifies. `alpha` defaults to 2.5 * eps / steps
    (Madry et al.). Returns the normalised adversarial input (detached). Call it with the model in eval mode."""
    check_attack_settings(epsilon, alpha, steps, restarts)
    if alpha is None:
        alpha = 2.5 * epsilon / steps
    _check_inputs(pixel_values, labels)
    pixels = to_pixels(pixel_values.detach(), mean, std)
    if epsilon == 0:
        return to_normalized(pixels, mean, std)
    best = None
    fooled = torch.zeros(pixels.shape[0], dtype=torch.bool, device=pixels.device)
    for _ in range(restarts):
        if random_start:
            delta = torch.clamp(_uniform(pixels.shape, epsilon, pixels.device, generator), -pixels, 1 - pixels)
        else:
            delta = torch.zeros_like(pixels)
        for _ in range(steps):
            delta = delta + alpha * _ascent_direction(model, pixels, delta, labels, mean, std)
            delta = torch.clamp(torch.clamp(delta, -epsilon, epsilon), -pixels, 1 - pixels)
        adversarial = to_normalized(torch.clamp(pixels + delta, 0, 1), mean, std).detach()
        if restarts == 1:
            return adversarial
        with torch.no_grad():
            wrong = logits_of(model, adversarial).argmax(-1) != labels.to(pixels.device)
        if best is None:
            best = adversarial.clone()
        take = wrong & ~fooled
        best[take] = adversarial[take]
        fooled |= wrong
    return best


__all__ = ["AttackError", "check_attack_settings", "fgsm_random_start", "logits_of", "parse_pixel_value", "pgd",
           "to_normalized", "to_pixels"]
