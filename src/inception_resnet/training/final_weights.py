"""What a run says about the network it trains, and the plain weights it leaves when training ends.

:func:`run_model_config` is the model configuration (:mod:`inception_resnet.weights.records`) of the run: the
network's name, options and ``in_chans``, the classes of the data, the input size it trained and validated
at, and the preprocessing of its validation (the network's evaluation transform at that size; the whole
image resized for ``augmentation="pad-crop"``). Every checkpoint carries it under ``model_config``.

:func:`write_final_weights` writes ``RUN/model/model.safetensors`` and ``RUN/model/config.json`` (timm's
local-folder layout) from the best checkpoint (its averaged weights when the run keeps an EMA, as the best
epoch was chosen by them), or from the newest one when no epoch was validated. The weights alone, without the
optimiser state and the second copy an EMA run's checkpoints hold: ``--weights RUN``,
``create_model(pretrained=RUN)`` and ``timm.create_model("local-dir:RUN/model")`` read them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from ..weights.loading import unwrap_state_dict
from ..weights.records import RUN_WEIGHTS_DIR, model_config, save_pretrained
from .checkpoint import load_checkpoint


def run_model_config(net: nn.Module, classes: list[str], input_size: int, augmentation: str) -> dict[str, Any]:
    """The model configuration of a run's network (see the module docstring)."""
    config = model_config(net, input_size=input_size, classes=list(classes))
    if augmentation == "pad-crop":  # validated on the whole image, resized (data/pad_crop.py)
        config["inception_resnet"]["metadata"].update(crop_pct=1.0, crop_mode="tf", interpolation="bilinear")
        config["pretrained_cfg"].update(crop_pct=1.0, crop_mode="squash", interpolation="bilinear")
    return config


def write_final_weights(run_dir: Path, best: Path | None, last: Path | None) -> Path | None:
    """``RUN/model/`` from the best checkpoint (else the newest); returns the folder, None without checkpoints."""
    source = best if best is not None and best.is_file() else last
    if source is None:
        return None
    state = load_checkpoint(source)
    config = state.get("model_config")
    if config is None:
        return None
    return save_pretrained(unwrap_state_dict(state, str(source)), config, Path(run_dir) / RUN_WEIGHTS_DIR)
