"""Converters from the weight formats of other libraries to this package's state-dict layout.

* :mod:`.tf_slim` - TF-slim checkpoints (``inception_v4.ckpt``, ``inception_resnet_v2_2016_08_30.ckpt``,
  ``inception_v3.ckpt``) to our layout and back, by the table of scopes in :mod:`.tf_slim_layout`; the files
  are read with TensorFlow's checkpoint reader (:mod:`.tf_checkpoint`, the optional ``tf`` extra).
* :mod:`.keras` - Keras ``InceptionResNetV2`` / ``InceptionV3`` weight files (the published legacy ``.h5``
  and Keras 3 ``.weights.h5`` / ``.keras``), read with h5py alone.
* :mod:`.facenet` - facenet-pytorch ``InceptionResnetV1`` state dicts (VGGFace2, CASIA-WebFace) for the
  ``inception_resnet_v1_facenet`` model.

Each converter returns a state dict in our layout; :func:`inception_resnet.weights.load_weights` then
applies the common adaptations (background class, auxiliary head) and the compatibility check.

Part of the ``weights/`` layer; see docs/architecture.md.
"""

from __future__ import annotations

import numpy as np
import torch


class MissingDependencyError(ImportError, RuntimeError):
    """An optional package a converter needs is not installed; the message says what to install.

    A RuntimeError too, so that the command line reports it as a plain error rather than a traceback.
    """


def conv_kernel(array: np.ndarray) -> torch.Tensor:
    """A TF/Keras convolution kernel [kh, kw, in, out] as a PyTorch weight [out, in, kh, kw]."""
    if array.ndim != 4:
        raise ValueError(f"expected a 4-d convolution kernel, got shape {tuple(array.shape)}")
    return torch.from_numpy(np.ascontiguousarray(array.transpose(3, 2, 0, 1))).float()


def dense_kernel(array: np.ndarray) -> torch.Tensor:
    """A TF/Keras dense kernel [in, out] (or a 1x1 convolution [1, 1, in, out]) as a Linear weight [out, in]."""
    if array.ndim == 4 and array.shape[:2] == (1, 1):
        array = array[0, 0]
    if array.ndim != 2:
        raise ValueError(f"expected a 2-d dense kernel, got shape {tuple(array.shape)}")
    return torch.from_numpy(np.ascontiguousarray(array.T)).float()


def vector(array: np.ndarray) -> torch.Tensor:
    """A 1-d TF/Keras variable (bias, BatchNorm statistics) as a float tensor."""
    return torch.from_numpy(np.ascontiguousarray(array).reshape(-1)).float()


def exclude_pool_padding(model: torch.nn.Module) -> int:
    """Make every padded average pool exclude the padding, as TensorFlow's SAME pooling does.

    timm's and torchvision's Inception-v3 average over the zero padding of the pool branch; TF-slim and Keras
    do not. Weights from TensorFlow give their home library's outputs only with TF's pooling, so loading them
    switches the pools (Inception-v4 and the Inception-ResNets already exclude the padding). Returns how many
    pools were changed.
    """
    changed = 0
    for module in model.modules():
        if isinstance(module, torch.nn.AvgPool2d) and module.count_include_pad and module.padding not in (0, (0, 0)):
            module.count_include_pad = False
            changed += 1
    return changed
