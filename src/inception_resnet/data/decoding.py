"""Decoding image files, and what happens to one that cannot be decoded (skipped with a warning, or an error).

See :mod:`inception_resnet.data.datasets` for the policy as the datasets apply it.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image
from torchvision.io import ImageReadMode, decode_image, decode_jpeg, read_file

from .transforms import to_float

JPEG_MAGIC = b"\xff\xd8\xff"
JPEG_END = b"\xff\xd9"


def is_complete_jpeg(data: torch.Tensor) -> bool:
    """Whether encoded bytes are a JPEG whose end-of-image marker is among its last 64 bytes.

    Only those go to nvJPEG, which can decode a cut-off file without complaint; the rest take the CPU's
    libjpeg-turbo, which reports the truncation, so that both devices skip the same corrupt files.
    """
    return bytes(data[:3].tolist()) == JPEG_MAGIC and JPEG_END in bytes(data[-64:].tolist())


class CorruptImageWarning(UserWarning):
    """Issued for each file skipped because it could not be decoded."""


class CorruptImageError(RuntimeError):
    """A file that could not be decoded as an image; ``path`` names it."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(
            f"cannot decode image {path}: {reason} (remove or replace the file, or run without --strict "
            "to skip such files)"
        )
        self.path = path
        self.reason = reason


@dataclass(frozen=True)
class SkippedSample:
    """What a dataset returns in place of an image it could not decode; the loader drops and counts it."""

    path: str
    reason: str
    fatal: bool = False


@dataclass(frozen=True)
class EncodedImage:
    """The undecoded bytes of an image file (``decode=False``), to decode later, e.g. on the GPU."""

    data: torch.Tensor
    path: str

    @property
    def is_complete_jpeg(self) -> bool:
        return is_complete_jpeg(self.data)


class ToFloatImage:
    """The default transform: a C x H x W float tensor in [0, 1]."""

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        return to_float(image)

    def __repr__(self) -> str:
        return "ToFloatImage()"


# -- decoding -------------------------------------------------------------------------------------------
@contextlib.contextmanager
def torchvision_io() -> Any:
    """Silence the DeprecationWarning torchvision 0.29 issues on every codec call (TorchCodec supersedes them).

    We use these codecs on purpose (libjpeg-turbo and nvJPEG through one API); users cannot act on it.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The image decoding and encoding", category=DeprecationWarning)
        yield


def decode_bytes(data: torch.Tensor, path: str, device: str | torch.device = "cpu") -> torch.Tensor:
    """Decode encoded bytes to an RGB uint8 C x H x W tensor; JPEG on ``device``, others through the CPU.

    Formats torchvision cannot read (BMP, TIFF...) go through PIL; failure is a :class:`CorruptImageError`.
    """
    device = torch.device(device)
    try:
        with torchvision_io():
            if device.type == "cuda" and is_complete_jpeg(data):
                return decode_jpeg(data, mode=ImageReadMode.RGB, device=device)
            return decode_image(data, mode=ImageReadMode.RGB).to(device)
    except RuntimeError as torchvision_error:
        try:
            with Image.open(path) as image:
                array = np.asarray(image.convert("RGB"))
        except (OSError, ValueError, Image.DecompressionBombError) as pil_error:
            reason = f"{first_line(torchvision_error)}; PIL: {first_line(pil_error)}"
            raise CorruptImageError(path, reason) from None
        return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous().to(device)


def first_line(error: BaseException) -> str:
    """The gist of an error message, without torchvision's C++ source location."""
    lines = str(error).strip().splitlines()
    text = lines[-1] if lines else type(error).__name__
    return re.sub(r"^\w+, \S+\.cpp:\d+, ", "", text)


def decode_file(path: str) -> torch.Tensor:
    """Read and decode an image file to an RGB uint8 C x H x W tensor (:class:`CorruptImageError` if not)."""
    try:
        with torchvision_io():
            data = read_file(path)
    except (OSError, RuntimeError) as error:
        raise CorruptImageError(path, first_line(error)) from None
    return decode_bytes(data, path)


def skip_or_raise(error: CorruptImageError, strict: bool) -> SkippedSample:
    """Under ``strict`` raise; otherwise warn and return the placeholder the loader drops and counts.

    In a DataLoader worker a strict error travels as a ``fatal`` placeholder instead, so that the loader
    raises it in the main process as a plain :class:`CorruptImageError` (not a wrapped worker traceback).
    """
    if strict:
        if torch.utils.data.get_worker_info() is None:
            raise error
        return SkippedSample(error.path, error.reason, fatal=True)
    warnings.warn(f"skipping {error.path}: {error.reason}", CorruptImageWarning, stacklevel=2)
    return SkippedSample(error.path, error.reason)


def decode_encoded(
    images: Sequence[EncodedImage], device: str | torch.device = "cpu", *, strict: bool = False
) -> tuple[list[torch.Tensor], list[int], list[str]]:
    """Decode a batch of :class:`EncodedImage` on ``device`` (batched nvJPEG on CUDA, one by one otherwise).

    Returns the decoded images, the indices in ``images`` they came from, and the paths skipped as corrupt.
    """
    device = torch.device(device)
    decoded: list[torch.Tensor | None] = [None] * len(images)
    jpegs = [i for i, image in enumerate(images) if image.is_complete_jpeg]
    if device.type == "cuda" and len(jpegs) > 1:
        try:
            with torchvision_io():
                batch = decode_jpeg([images[i].data for i in jpegs], mode=ImageReadMode.RGB, device=device)
            for i, image in zip(jpegs, batch, strict=True):
                decoded[i] = image
        except RuntimeError:
            pass  # a bad file in the batch: decode one by one below to find it
    skipped: list[str] = []
    for i, image in enumerate(images):
        if decoded[i] is None:
            try:
                decoded[i] = decode_bytes(image.data, image.path, device)
            except CorruptImageError as error:
                skip_or_raise(error, strict)
                skipped.append(error.path)
    kept = [i for i, image in enumerate(decoded) if image is not None]
    return [decoded[i] for i in kept], kept, skipped
