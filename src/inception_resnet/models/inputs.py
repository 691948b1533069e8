"""The checks of a network's input, each a ValueError that names the model, what it got and what to do.

:func:`check_min_size` is the one minimum-input check, used by the networks' forward, the preprocessing
(:mod:`inception_resnet.data.transforms`) and the trainer; :func:`check_batch` is everything a network's
forward checks (:meth:`~inception_resnet.models.base.InceptionNet.check_input`). Both compile under
TorchScript. See docs/architecture.md for where this sits in the package.
"""

from __future__ import annotations

import torch


def check_min_size(model_name: str, height: int, width: int, minimum: int, fix: str) -> None:
    """The one minimum-input check: a ValueError naming the model, the size, the minimum and ``fix``.

    Used by the networks' forward (it compiles under TorchScript), the preprocessing and the trainer.
    """
    if height < minimum or width < minimum:
        raise ValueError(
            model_name
            + ": input of "
            + str(height)
            + "x"
            + str(width)
            + " is too small; the minimum is "
            + str(minimum)
            + "x"
            + str(minimum)
            + " ("
            + fix
            + ")"
        )


def check_batch(x: torch.Tensor, model_name: str, in_chans: int, min_size: int, default_size: int) -> None:
    """Raise a ValueError naming the model, the input and the minimum when ``x`` cannot be processed."""
    if x.dim() != 4:
        raise ValueError(
            model_name + ": expected a 4-d batch (N, C, H, W), got a tensor of shape " + str(list(x.shape))
        )
    if not x.is_floating_point():
        raise ValueError(
            model_name + ": expected a floating-point batch, got integer or boolean values; convert "
            "the images with x.float() / 255 and normalise them with the model's metadata (mean, std)"
        )
    if x.shape[1] != in_chans:
        raise ValueError(
            model_name
            + ": expected "
            + str(in_chans)
            + " input channels, got "
            + str(x.shape[1])
            + " (input shape "
            + str(list(x.shape))
            + "); build the model with in_chans="
            + str(x.shape[1])
            + " or convert the images"
        )
    check_min_size(
        model_name,
        x.shape[2],
        x.shape[3],
        min_size,
        "resize the images up, e.g. to the default " + str(default_size) + "x" + str(default_size),
    )
