"""facenet-pytorch ``InceptionResnetV1`` state dicts for the ``inception_resnet_v1_facenet`` model.

The released files (``20180402-114759-vggface2.pt``, ``20180408-102900-casia-webface.pt``) are plain state
dicts whose keys are already ours (see docs/architecture.md): ``conv2d_1a`` ... ``repeat_1/2/3``,
``mixed_6a``, ``mixed_7a``, ``block8``, ``last_linear``, ``last_bn`` and ``logits`` (8631 or 10575
identities). The only adaptation is the identity classifier: dropped for a model built without logits
(``num_classes=0``: embeddings only), and a clear error when its size differs from the model's.
"""

from __future__ import annotations

import torch
from torch import nn

StateDict = dict[str, torch.Tensor]

KNOWN_LOGITS = {8631: "VGGFace2", 10575: "CASIA-WebFace"}


def is_facenet_model(model: nn.Module) -> bool:
    """Whether ``model`` is the facenet variant (the only one whose state dicts this module adapts)."""
    return getattr(model, "model_name", "") == "inception_resnet_v1_facenet"


def adapt_facenet_state(model: nn.Module, state: StateDict, new_logits: bool = False) -> tuple[StateDict, list[str]]:
    """Fit the identity classifier of a facenet-pytorch state dict to ``model``; returns it and notes.

    ``new_logits`` (fine-tuning to other identities) leaves logits of another size to the caller, which keeps
    the model's new ones (:func:`inception_resnet.weights.loading.fit_classifiers`); otherwise they are an error.
    """
    state = dict(state)
    notes: list[str] = []
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = value.clone()
    if "logits.weight" not in state:
        return state, notes
    file_classes = int(state["logits.weight"].shape[0])
    model_classes = int(getattr(model, "num_classes", 0))
    dataset = KNOWN_LOGITS.get(file_classes, "an unknown data set")
    if model_classes == 0:
        state.pop("logits.weight")
        state.pop("logits.bias", None)
        notes.append(f"dropped the {file_classes}-identity logits ({dataset}); the model gives embeddings only")
    elif model_classes != file_classes and not new_logits:
        raise ValueError(
            f"the file's logits classify {file_classes} identities ({dataset}) but the model was built with "
            f"num_classes={model_classes}; build it with num_classes={file_classes} to keep them, or "
            "num_classes=0 for embeddings only"
        )
    return state, notes
