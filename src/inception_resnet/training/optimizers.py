"""Optimisers and learning-rate schedules of the training recipes.

* :class:`RMSpropTF` - RMSProp as TensorFlow's ``tf.train.RMSPropOptimizer`` computes it, which is what the
  paper's hyper-parameters (decay 0.9, momentum 0.9, epsilon 1.0) were tuned for. Per parameter ``w`` with
  gradient ``g``::

      g   <- g + weight_decay * w            (L2 penalty, as TF-slim's regulariser adds it to the loss)
      ms  <- decay * ms + (1 - decay) * g^2  (ms starts at ONE, not zero)
      mom <- momentum * mom + lr * g / sqrt(ms + eps)   (eps INSIDE the square root; lr in the buffer)
      w   <- w - mom

  ``torch.optim.RMSprop`` differs in all three places (zero-initialised ``ms``, ``eps`` outside the root,
  ``lr`` applied after the momentum buffer), so the same numbers behave very differently there: with
  ``eps = 1`` the TF denominator never falls below one. ``centered=True`` is TF's centred variant
  (``ms - mg^2`` under the root, ``mg`` the running mean of ``g``).
* :func:`param_groups` - splits parameters into a decayed and an undecayed group. ``no_decay="norm"`` (the
  paper recipe) exempts only BatchNorm parameters: TF-slim regularises convolution and classifier weights
  and, for Inception-ResNet-v2, biases too, while its BatchNorm has no regularised variables.
  ``"norm_and_bias"`` (the SGD recipe) also exempts every bias, the usual modern choice; ``"none"`` decays all.
* :class:`LRSchedule` - the learning rate as a pure function of the optimiser step: ``"step"`` is TF's
  staircase exponential decay (``lr * rate ** floor(step / decay_steps)``, 0.94 every 2 epochs in the
  paper), ``"cosine"`` a half cosine to ``min_lr``, ``"constant"`` a flat rate. An optional linear warm-up
  ramps from ``lr / warmup_steps`` to ``lr`` over the first ``warmup_steps`` steps; the decay is counted from
  step 0, so warm-up replaces the start of the schedule rather than delaying it.
* :func:`scale_lr` - the linear scaling rule: ``lr * global_batch / reference_batch``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

import torch
from torch import nn

NO_DECAY_CHOICES = ("norm", "norm_and_bias", "none")
SCHEDULES = ("step", "cosine", "constant")

_NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


class RMSpropTF(torch.optim.Optimizer):
    """RMSProp with TensorFlow's semantics (see the module docstring for the exact update).

    Arguments follow ``torch.optim.RMSprop`` where they mean the same thing; ``decay`` is TF's name for the
    smoothing constant (PyTorch's ``alpha``). ``foreach`` batches the update over all tensors of a group
    (fewer kernel launches on a GPU); by default it is used when the parameters live on a CUDA device.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict],
        lr: float = 0.045,
        decay: float = 0.9,
        momentum: float = 0.9,
        eps: float = 1.0,
        weight_decay: float = 0.0,
        centered: bool = False,
        foreach: bool | None = None,
    ) -> None:
        if lr < 0:
            raise ValueError(f"RMSpropTF: lr must be >= 0, got {lr}")
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"RMSpropTF: decay must lie in [0, 1), got {decay}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"RMSpropTF: momentum must lie in [0, 1), got {momentum}")
        if eps <= 0:
            raise ValueError(f"RMSpropTF: eps must be > 0, got {eps}")
        if weight_decay < 0:
            raise ValueError(f"RMSpropTF: weight_decay must be >= 0, got {weight_decay}")
        defaults = dict(
            lr=lr,
            decay=decay,
            momentum=momentum,
            eps=eps,
            weight_decay=weight_decay,
            centered=centered,
            foreach=foreach,
        )
        super().__init__(params, defaults)

    def _init_state(self, param: torch.Tensor, group: dict) -> dict:
        state = self.state[param]
        if not state:
            state["step"] = 0
            state["square_avg"] = torch.ones_like(param, memory_format=torch.preserve_format)
            if group["momentum"] > 0:
                state["momentum_buffer"] = torch.zeros_like(param, memory_format=torch.preserve_format)
            if group["centered"]:
                state["grad_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        return state

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """Apply one update to every parameter that has a gradient; returns the closure's loss if given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            if any(p.grad.is_sparse for p in params):
                raise RuntimeError("RMSpropTF does not support sparse gradients")
            states = [self._init_state(p, group) for p in params]
            for state in states:
                state["step"] += 1
            use_foreach = group["foreach"]
            if use_foreach is None:
                use_foreach = all(p.is_cuda for p in params)
            if use_foreach:
                for batch in _split_by_device_and_dtype(params, states):
                    _update_foreach(*batch, group)
            else:
                for param, state in zip(params, states, strict=True):
                    _update_single(param, state, group)
        return loss


def _split_by_device_and_dtype(params: list[torch.Tensor], states: list[dict]):
    buckets: dict[tuple, tuple[list, list]] = {}
    for param, state in zip(params, states, strict=True):
        bucket = buckets.setdefault((param.device, param.dtype), ([], []))
        bucket[0].append(param)
        bucket[1].append(state)
    return buckets.values()


def _update_single(param: torch.Tensor, state: dict, group: dict) -> None:
    grad = param.grad
    if group["weight_decay"]:
        grad = grad.add(param, alpha=group["weight_decay"])
    decay, eps = group["decay"], group["eps"]
    square_avg = state["square_avg"]
    square_avg.mul_(decay).addcmul_(grad, grad, value=1.0 - decay)
    if group["centered"]:
        grad_avg = state["grad_avg"]
        grad_avg.mul_(decay).add_(grad, alpha=1.0 - decay)
        denom = square_avg.addcmul(grad_avg, grad_avg, value=-1.0).add_(eps).sqrt_()
    else:
        denom = square_avg.add(eps).sqrt_()
    if group["momentum"] > 0:
        buf = state["momentum_buffer"]
        buf.mul_(group["momentum"]).addcdiv_(grad, denom, value=group["lr"])
        param.sub_(buf)
    else:
        param.addcdiv_(grad, denom, value=-group["lr"])


def _update_foreach(params: list[torch.Tensor], states: list[dict], group: dict) -> None:
    grads = [p.grad for p in params]
    if group["weight_decay"]:
        grads = torch._foreach_add(grads, params, alpha=group["weight_decay"])
    decay, eps = group["decay"], group["eps"]
    square_avgs = [s["square_avg"] for s in states]
    torch._foreach_mul_(square_avgs, decay)
    torch._foreach_addcmul_(square_avgs, grads, grads, value=1.0 - decay)
    if group["centered"]:
        grad_avgs = [s["grad_avg"] for s in states]
        torch._foreach_mul_(grad_avgs, decay)
        torch._foreach_add_(grad_avgs, grads, alpha=1.0 - decay)
        denoms = torch._foreach_addcmul(square_avgs, grad_avgs, grad_avgs, value=-1.0)
        torch._foreach_add_(denoms, eps)
    else:
        denoms = torch._foreach_add(square_avgs, eps)
    torch._foreach_sqrt_(denoms)
    if group["momentum"] > 0:
        bufs = [s["momentum_buffer"] for s in states]
        torch._foreach_mul_(bufs, group["momentum"])
        torch._foreach_addcdiv_(bufs, grads, denoms, value=group["lr"])
        torch._foreach_sub_(params, bufs)
    else:
        torch._foreach_addcdiv_(params, grads, denoms, value=-group["lr"])


def param_groups(model: nn.Module, weight_decay: float, no_decay: str = "norm") -> list[dict]:
    """Trainable parameters split into a group with ``weight_decay`` and one without (see module docstring).

    Frozen parameters (``requires_grad=False``) are left out. Empty groups are dropped.
    """
    if no_decay not in NO_DECAY_CHOICES:
        raise ValueError(f"no_decay must be one of {NO_DECAY_CHOICES}, got {no_decay!r}")
    decayed: list[nn.Parameter] = []
    exempt: list[nn.Parameter] = []
    seen: set[int] = set()
    for module in model.modules():
        is_norm = isinstance(module, _NORM_TYPES)
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            if no_decay != "none" and (is_norm or (no_decay == "norm_and_bias" and name == "bias")):
                exempt.append(param)
            else:
                decayed.append(param)
    groups = [
        {"params": decayed, "weight_decay": weight_decay},
        {"params": exempt, "weight_decay": 0.0},
    ]
    return [g for g in groups if g["params"]]


def build_optimizer(
    name: str,
    groups: list[dict],
    *,
    lr: float,
    momentum: float = 0.9,
    nesterov: bool = True,
    rmsprop_decay: float = 0.9,
    rmsprop_eps: float = 1.0,
) -> torch.optim.Optimizer:
    """``"rmsprop_tf"`` (:class:`RMSpropTF`) or ``"sgd"`` (``torch.optim.SGD``) over prepared ``groups``."""
    if not groups:
        raise ValueError("there are no trainable parameters to optimise (is the whole model frozen?)")
    if name == "rmsprop_tf":
        return RMSpropTF(groups, lr=lr, decay=rmsprop_decay, momentum=momentum, eps=rmsprop_eps)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=nesterov and momentum > 0)
    raise ValueError(f"unknown optimizer {name!r}; choose 'rmsprop_tf' or 'sgd'")


def scale_lr(lr: float, global_batch: int, reference_batch: int) -> float:
    """Linear scaling rule: the rate for ``global_batch`` images when ``lr`` was set for ``reference_batch``."""
    if global_batch < 1 or reference_batch < 1:
        raise ValueError(f"batch sizes must be positive, got {global_batch} and {reference_batch}")
    return lr * global_batch / reference_batch


@dataclass(frozen=True)
class LRSchedule:
    """The learning rate at every optimiser step: warm-up, then step (staircase), cosine or constant.

    ``lr`` is the peak rate (already batch-scaled); lengths are in epochs of ``steps_per_epoch`` steps.
    """

    lr: float
    steps_per_epoch: int
    epochs: int
    kind: str = "step"
    decay_rate: float = 0.94
    decay_epochs: float = 2.0
    staircase: bool = True
    warmup_epochs: float = 0.0
    min_lr: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.kind!r}; choose one of {SCHEDULES}")
        if self.steps_per_epoch < 1 or self.epochs < 1:
            raise ValueError("a schedule needs at least one epoch of at least one step")
        if self.lr < 0 or self.min_lr < 0:
            raise ValueError("learning rates must be >= 0")
        if self.warmup_epochs < 0:
            raise ValueError(f"warmup_epochs must be >= 0, got {self.warmup_epochs}")
        if self.kind == "step" and (self.decay_epochs <= 0 or not 0 < self.decay_rate <= 1):
            raise ValueError("the step schedule needs decay_epochs > 0 and 0 < decay_rate <= 1")

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.epochs

    @property
    def warmup_steps(self) -> int:
        return int(round(self.warmup_epochs * self.steps_per_epoch))

    @property
    def decay_steps(self) -> int:
        """Steps per decay interval, an integer as TF computes it (at least one)."""
        return max(1, int(self.decay_epochs * self.steps_per_epoch))

    def __call__(self, step: int) -> float:
        """The rate for the update made after ``step`` earlier updates (``step`` counts from 0)."""
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        if self.kind == "constant":
            return self.lr
        if self.kind == "step":
            exponent = step / self.decay_steps
            if self.staircase:
                exponent = math.floor(exponent)
            return self.lr * self.decay_rate**exponent
        span = max(1, self.total_steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / span)
        return self.min_lr + (self.lr - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))

    def to_dict(self) -> dict:
        return asdict(self)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set the rate of every parameter group (times the group's optional ``lr_scale``)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
