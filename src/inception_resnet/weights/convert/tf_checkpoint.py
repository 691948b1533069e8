"""Reading TensorFlow checkpoint files: TensorFlow imported safely, the file opened with its checkpoint reader.

TensorFlow's reader takes both the V1 single-file format of the released TF-slim checkpoints and the V2
``.index``/``.data`` format; :func:`read_checkpoint` gives the variables as a read-only mapping
(:class:`CheckpointVariables`), read on access. TensorFlow is the optional ``tf`` extra. Part of the
``weights/`` layer; see docs/architecture.md.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from . import MissingDependencyError

TF_INSTALL_HINT = (
    "reading TF-slim checkpoints needs TensorFlow: pip install 'inception-resnet[tf]' (or pip install tensorflow-cpu)"
)


class CheckpointVariables(Mapping):
    """The variables of a TF checkpoint as a read-only mapping name -> numpy array, read on access."""

    def __init__(self, reader) -> None:
        self._reader = reader
        self._shapes = reader.get_variable_to_shape_map()

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._shapes:
            raise KeyError(name)
        return np.asarray(self._reader.get_tensor(name))

    def __iter__(self) -> Iterator[str]:
        return iter(self._shapes)

    def __len__(self) -> int:
        return len(self._shapes)


def checkpoint_prefix(path: str | os.PathLike) -> str:
    """The name TensorFlow's reader takes: the V1 file itself, or the V2 prefix without ``.index``/``.data``."""
    text = str(path)
    if text.endswith(".index"):
        return text[: -len(".index")]
    if ".data-" in Path(text).name:
        return text[: text.rindex(".data-")]
    return text


def import_tensorflow():
    """TensorFlow, imported after torch's compiler stack.

    Loading TensorFlow's native libraries first makes a later import of ``torch._dynamo`` (triton, pulled in
    by ``torch.compile``, the ``meta`` device and the ONNX exporter) crash the process; the other order is
    safe, so this imports ``torch._dynamo`` first.
    """
    import torch._dynamo  # noqa: F401

    try:
        import tensorflow as tf
    except ImportError as err:
        raise MissingDependencyError(TF_INSTALL_HINT) from err
    return tf


def read_checkpoint(path: str | os.PathLike) -> CheckpointVariables:
    """Open a TF checkpoint (V1 ``.ckpt`` file or V2 prefix) with TensorFlow's reader."""
    tf = import_tensorflow()
    prefix = checkpoint_prefix(path)
    try:
        reader = tf.train.load_checkpoint(prefix)
    except Exception as err:  # TF raises its own error types (DataLossError, NotFoundError...)
        raise ValueError(
            f"{path} could not be read as a TensorFlow checkpoint ({type(err).__name__}: "
            f"{str(err).splitlines()[0][:200]}); pass the .ckpt file of a released TF-slim model "
            "or the prefix of a V2 checkpoint (the path without .index)"
        ) from err
    return CheckpointVariables(reader)
