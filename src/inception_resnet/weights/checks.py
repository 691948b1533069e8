"""The checks a state dict passes before it is loaded: every key and shape fits the network, every value is finite."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

StateDict = dict[str, torch.Tensor]


def check_finite(state: Mapping[str, torch.Tensor], where: str) -> None:
    """Raise a ValueError naming the tensors of ``state`` that hold NaN or infinite values."""
    bad = [key for key, value in state.items() if value.is_floating_point() and not bool(torch.isfinite(value).all())]
    if bad:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise ValueError(
            f"the weights in {where} hold NaN or infinite values in {len(bad)} of {len(state)} tensors ({shown}); "
            "a model with them gives meaningless outputs (a training run that diverged?). Use an earlier "
            "checkpoint of the run"
        )


def check_compatible(model: nn.Module, state: StateDict) -> None:
    """Raise a ValueError naming the first missing, unexpected and mis-shaped keys, if there are any."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mis_shaped = [
        f"{k} (file {tuple(state[k].shape)}, model {tuple(own[k].shape)})"
        for k in own
        if k in state and state[k].shape != own[k].shape
    ]
    if not (missing or unexpected or mis_shaped):
        return
    name = getattr(model, "model_name", type(model).__name__)
    parts = [f"the weights do not fit {name}:"]
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", mis_shaped)):
        if keys:
            more = f" and {len(keys) - 3} more" if len(keys) > 3 else ""
            parts.append(f"{len(keys)} {label} key(s): {', '.join(keys[:3])}{more};")
    parts.append(
        "check the model name, num_classes (e.g. --num-classes) and options such as aux_logits or "
        "width_multiplier against the ones the weights were trained with"
    )
    raise ValueError(" ".join(parts))
