"""Fine-tuning helpers: load weights whose classifiers have another size, give a network new classifiers, and
freeze everything but the heads.

Both go by the model's :meth:`~inception_resnet.models.base.InceptionNet.classifier_names` (the main classifier
and every auxiliary one), so GoogLeNet's ``aux1.fc2``/``aux2.fc2`` are treated like v3's ``AuxLogits.fc``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch
from torch import nn

from ..models.layers import init_weights
from ..weights.loading import classifier_names, load_weights


def load_pretrained(net: nn.Module, source: str | os.PathLike | Mapping[str, torch.Tensor]) -> list[str]:
    """Load weights for fine-tuning: everything but a classifier whose size differs (that one stays new).

    ``source`` is anything :func:`~inception_resnet.weights.load_weights` takes; returns its notes.
    """
    return load_weights(net, source, new_heads=True)


def renew_classifiers(net: nn.Module) -> list[str]:
    """Initialise every classifier (main and auxiliary) afresh, as the network initialises them; returns their
    names. For weights trained on other classes than the data's, in the same number: their classifier fits but
    means nothing for the new classes."""
    names = classifier_names(net)
    for name in names:
        init_weights(net.get_submodule(name))
    return names


def freeze_body(net: nn.Module) -> list[str]:
    """Freeze every parameter but the classifiers' (main and auxiliary); returns the trainable ones."""
    heads = tuple(f"{name}." for name in classifier_names(net))
    trainable = []
    for name, param in net.named_parameters():
        keep = name.startswith(heads)
        param.requires_grad_(keep)
        if keep:
            trainable.append(name)
    if not trainable:
        raise ValueError("freeze_body left nothing to train: the model has no classifier (num_classes=0?)")
    return trainable
