"""Step probes: measurements a caller adds to the rows of ``steps.jsonl`` while a network trains.

``train(config, step_probe=probe)`` calls ``probe(context)`` with a :class:`ProbeContext` once before the
first step of a fresh run (step 0) and at every logged step (``log_every_steps``) after the update, on the
main process only; the mapping it returns is merged into the step's row. The time a probe takes is not
counted as training time. A probe must leave the run as it found it: it should draw no random numbers and
change no weights or BatchNorm statistics (e.g. evaluate in eval mode, without gradients); the trainer puts
the network back in training mode afterwards. The residual study's probe is
:class:`inception_resnet.study.probe.DeathProbe`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset


@dataclass(frozen=True)
class ProbeContext:
    """What a step probe sees: the network (unwrapped from DDP/compile), the step and epoch, the device,
    the validation data (a dataset of transformed images and its loader; None without validation data)
    and the resolved configuration."""

    net: nn.Module
    step: int
    epoch: int
    device: torch.device
    val_dataset: Dataset | None
    val_loader: Any
    config: Any


StepProbe = Callable[[ProbeContext], Mapping[str, Any]]
