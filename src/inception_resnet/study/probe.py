"""What the scaling study measures while a network trains: dead channels, zeros and the residual stream.

The paper (section 3.3) describes wide Inception-ResNets that "died": the last layer before the average
pooling produced only zeros. :class:`DeathProbe` is a step probe (see :func:`inception_resnet.training.train`)
that, at every logged step, runs the network in eval mode on a fixed probe batch (evenly spaced images of
the validation set) and adds to the step's row of ``steps.jsonl``:

* ``dead_channels``: the share of the channels entering the final pooling that are zero at every position
  of every probe image (:func:`dead_channel_share`); 1.0 is the paper's "only zeros";
* ``probe_zero_fraction``: the share of exact zeros in that feature map (:func:`zero_fraction`);
* ``stream_rms``: the root-mean-square of the residual stream after every Inception-ResNet block, in forward
  order (:class:`ResidualStreamMonitor`), to see a blow-up before a death; ``stream_rms_last`` and
  ``stream_rms_max`` summarise it;
* every ``val_every_steps`` steps, ``val_top1_error`` and ``val_loss`` on the whole validation set.

The probe draws no random numbers and leaves the BatchNorm statistics alone, so a run trains exactly as it
would without it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..evaluation.evaluate import TrainingModeRestored, evaluate_loader


def dead_channel_share(features: torch.Tensor) -> float:
    """The share of channels (dimension 1) that are exactly zero for every image and every position.

    ``features`` is ``(N, C)`` or ``(N, C, H, W)``; a channel counts as dead when no image of the batch
    gives it a non-zero value anywhere.
    """
    if features.dim() < 2:
        raise ValueError(f"expected a batch of feature maps (N, C[, H, W]), got shape {list(features.shape)}")
    alive = (features.detach() != 0).transpose(0, 1).reshape(features.shape[1], -1).any(dim=1)
    return 1.0 - alive.float().mean().item()


def zero_fraction(features: torch.Tensor) -> float:
    """The share of exact zeros in a tensor."""
    return (features.detach() == 0).float().mean().item()


def residual_blocks(net: nn.Module) -> list[tuple[str, nn.Module]]:
    """The Inception-ResNet blocks of ``net`` (:class:`~inception_resnet.models.layers.ScaledResidual`), in
    module order (the forward order of every network of this package)."""
    from ..models.layers import ScaledResidual

    return [(name, module) for name, module in net.named_modules() if isinstance(module, ScaledResidual)]


class ResidualStreamMonitor:
    """Forward hooks on every residual block that record the root-mean-square of the block's output.

    The output of a block is the residual stream after it (``relu(x + scale * branches(x))``). Use it as a
    context manager around the forward passes to measure; ``values`` then holds one list per forward pass,
    one number per block in forward order, and :meth:`last` the latest of them::

        with ResidualStreamMonitor(net) as monitor:
            net(images)
        print(monitor.names, monitor.last())
    """

    def __init__(self, net: nn.Module) -> None:
        self.blocks = residual_blocks(net)
        self.names = [name for name, _ in self.blocks]
        self.values: list[list[float]] = []
        self._current: list[float] = []
        self._handles: list[Any] = []

    def _hook(self, _module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
        self._current.append(output.detach().float().pow(2).mean().sqrt().item())
        if len(self._current) == len(self.blocks):
            self.values.append(self._current)
            self._current = []

    def __enter__(self) -> ResidualStreamMonitor:
        if self._handles:
            raise RuntimeError("ResidualStreamMonitor is already attached")
        self._handles = [module.register_forward_hook(self._hook) for _, module in self.blocks]
        return self

    def __exit__(self, *exc: Any) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self._current = []

    def last(self) -> list[float]:
        """The block outputs' root-mean-square of the latest complete forward pass ([] before any)."""
        return list(self.values[-1]) if self.values else []


def features_and_logits(net: nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The feature map entering the final pooling and the logits (networks with ``forward_features`` /
    ``forward_head``, as every network of this package and timm's)."""
    if not (hasattr(net, "forward_features") and hasattr(net, "forward_head")):
        raise TypeError(
            f"{type(net).__name__} has no forward_features/forward_head: the probe cannot see the "
            "input of its final pooling"
        )
    features = net.forward_features(images)
    return features, net.forward_head(features)


def probe_indices(size: int, count: int) -> list[int]:
    """``count`` evenly spaced indices of a dataset of ``size`` items (all of them when it is smaller)."""
    if size <= 0:
        return []
    if count >= size:
        return list(range(size))
    return sorted({int(i * size / count) for i in range(count)})


@dataclass
class DeathProbe:
    """A step probe: dead channels, zero fraction and residual-stream norms on a fixed probe batch, at every
    logged step; validation error every ``val_every_steps`` steps (0: only the trainer's, after each epoch).

    ``probe_images`` evenly spaced validation images form the probe batch: the same at every step of a run,
    and the same for every run with the same validation images (a subset of them follows the run's seed).
    The batch is cached on the first call: use one probe per run. Call it with a
    :class:`~inception_resnet.training.ProbeContext`; it returns the values to add to the step's row.
    """

    probe_images: int = 64
    val_every_steps: int = 0
    _batch: torch.Tensor | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.probe_images < 1:
            raise ValueError(f"probe_images must be at least 1, got {self.probe_images}")
        if self.val_every_steps < 0:
            raise ValueError(f"val_every_steps must be >= 0, got {self.val_every_steps}")

    def __getstate__(self) -> dict[str, Any]:  # the cached batch stays behind (it is rebuilt in each run)
        state = dict(self.__dict__)
        state["_batch"] = None
        return state

    def probe_batch(self, dataset: Any, device: torch.device) -> torch.Tensor:
        """The fixed probe batch: ``probe_images`` evenly spaced images of ``dataset`` (cached)."""
        if self._batch is None or self._batch.device != device:
            if dataset is None or len(dataset) == 0:
                raise ValueError("the death probe needs validation images (set max_val_images > 0 or give val data)")
            images = [dataset[i][0] for i in probe_indices(len(dataset), self.probe_images)]
            self._batch = torch.stack(images).to(device)
        return self._batch

    def measure(self, net: nn.Module, images: torch.Tensor) -> dict[str, Any]:
        """Dead channels, zero fraction and residual-stream norms of ``net`` (eval mode) on ``images``."""
        with TrainingModeRestored(net), torch.no_grad(), ResidualStreamMonitor(net) as monitor:
            features = features_and_logits(net.eval(), images)[0]
        stream = monitor.last()
        row: dict[str, Any] = {
            "dead_channels": dead_channel_share(features),
            "probe_zero_fraction": zero_fraction(features),
        }
        if stream:
            row.update({"stream_rms": stream, "stream_rms_last": stream[-1], "stream_rms_max": max(stream)})
        return row

    def validate(self, net: nn.Module, loader: Any, device: torch.device) -> dict[str, Any]:
        """Top-1 error (%) and mean cross-entropy of ``net`` (eval mode) over a validation loader."""
        dataset = getattr(loader, "dataset", None)
        if dataset is not None and len(dataset) == 0:
            return {}
        result = evaluate_loader(net, loader, device=device)
        return {"val_top1_error": result.top1_error, "val_loss": result.loss}

    def __call__(self, context: Any) -> dict[str, Any]:
        row = self.measure(context.net, self.probe_batch(context.val_dataset, context.device))
        if self.val_every_steps and context.step % self.val_every_steps == 0 and context.val_loader is not None:
            row.update(self.validate(context.net, context.val_loader, context.device))
        return row
