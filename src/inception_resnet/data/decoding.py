"""Decoding image files, and what happens to one that cannot be decoded (skipped with a warning, or an error).

See :mod:`inception_resnet.data.datasets` for the policy as the datasets apply it. Before a file is read,
:func:`check_image_file` makes sure reading it is safe: it must be a regular file (a named pipe would block
the reader forever, a device would never end), not a symbolic link loop, and the image size its header
declares must stay within a pixel limit (:func:`max_image_pixels`: ``$INCEPTION_RESNET_MAX_PIXELS``, else
PIL's own default of about 89.5 million pixels), so that a hostile or damaged file whose header claims
huge dimensions is refused before any pixel memory is allocated. Such files are skipped like corrupt ones.
JPEG files are decoded by torchvision (libjpeg-turbo, nvJPEG on CUDA), all other formats by PIL (which reports
damaged data as an error). Grey images of 16 bits decode to ``uint16`` tensors (the transforms scale them by
65535), 16-bit colour images to uint8 (PIL keeps the high byte), never clipped; 32-bit floating-point grey
images (TIFF) holding intensities from 0 to 1 to ``uint16`` too, other ranges are refused as undecodable.
"""

from __future__ import annotations

import contextlib
import errno
import io
import math
import os
import re
import stat
import threading
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image
from torchvision.io import ImageReadMode, decode_jpeg

from .transforms import to_float

DEFAULT_MAX_PIXELS = 89_478_485  # PIL's default Image.MAX_IMAGE_PIXELS
MAX_PIXELS_ENV = "INCEPTION_RESNET_MAX_PIXELS"
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


def copy_with_transform(dataset: Any, transform: Callable | None) -> Any:
    """A shallow copy of ``dataset`` (its data shared) applying ``transform``; None gives float images."""
    copy = object.__new__(type(dataset))
    copy.__dict__.update(dataset.__dict__)
    copy.transform = transform if transform is not None else ToFloatImage()
    return copy


# -- decoding -------------------------------------------------------------------------------------------
@contextlib.contextmanager
def torchvision_io() -> Any:
    """Silence the DeprecationWarning torchvision 0.29 issues on every codec call (TorchCodec supersedes them).

    We use these codecs on purpose (libjpeg-turbo and nvJPEG through one API); users cannot act on it.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The image decoding and encoding", category=DeprecationWarning)
        yield


def decode_bytes(
    data: torch.Tensor, path: str, device: str | torch.device = "cpu", max_pixels: int | None = None
) -> torch.Tensor:
    """Decode encoded bytes to an RGB C x H x W tensor (uint8; uint16 for 16-bit grey images) on ``device``.

    JPEG goes through torchvision (libjpeg-turbo, or nvJPEG on CUDA); every other format through PIL, which
    reports damaged data as an error where torchvision's PNG decoder can crash the process (a complete file
    with too little pixel data). Failure is a :class:`CorruptImageError`.
    """
    device = torch.device(device)
    if bytes(data[:3].tolist()) == JPEG_MAGIC:
        try:
            with torchvision_io():
                if device.type == "cuda" and is_complete_jpeg(data):
                    return decode_jpeg(data, mode=ImageReadMode.RGB, device=device)
                return decode_jpeg(data, mode=ImageReadMode.RGB).to(device)
        except RuntimeError as torchvision_error:
            first_error = f"{first_line(torchvision_error)}; PIL: "
    else:
        first_error = ""
    try:
        with pil_pixel_limit(max_image_pixels(max_pixels)), Image.open(io.BytesIO(data.numpy().tobytes())) as image:
            tensor = pil_to_tensor(image)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as pil_error:
        raise CorruptImageError(path, first_error + first_line(pil_error)) from None
    return tensor.to(device)


def pil_to_tensor(image: Image.Image) -> torch.Tensor:
    """An RGB C x H x W tensor of a PIL image: uint8, or uint16 for PIL's 16- and 32-bit integer modes.

    PIL's own ``convert("RGB")`` clips 16-bit values at 255 (a nearly white image); here they keep their range.
    """
    if image.mode.startswith("I"):  # I;16, I;16B, I;16L, I (32-bit integers holding 16-bit values)
        array = np.asarray(image).astype(np.int64).clip(0, 65535).astype(np.uint16)
        grey = torch.from_numpy(array.copy())
        return grey.unsqueeze(0).expand(3, -1, -1).contiguous()
    if image.mode == "F":  # 32-bit floating-point grey (TIFF): intensities in [0, 1], kept at 16 bits
        array = np.asarray(image, dtype=np.float64)
        if not np.isfinite(array).all() or array.min() < 0.0 or array.max() > 1.0:
            finite = array[np.isfinite(array)]
            span = f"{finite.min():g} to {finite.max():g}" if finite.size else "no finite value"
            raise ValueError(
                f"a 32-bit floating-point image must hold intensities from 0 to 1 (this one: {span}"
                f"{', with NaN or infinite values' if finite.size < array.size else ''}); convert it "
                "to 8 or 16 bits per pixel"
            )
        grey = torch.from_numpy(np.rint(array * 65535.0).astype(np.uint16))
        return grey.unsqueeze(0).expand(3, -1, -1).contiguous()
    array = np.asarray(image.convert("RGB"))
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()


_PIL_LIMIT_LOCK = threading.Lock()


@contextlib.contextmanager
def pil_pixel_limit(limit: int) -> Any:
    """PIL's decompression-bomb limit raised to ``limit`` for a block (ours was checked from the header)."""
    with _PIL_LIMIT_LOCK:
        before = Image.MAX_IMAGE_PIXELS
        if before is not None:  # None: the user switched PIL's check off
            Image.MAX_IMAGE_PIXELS = max(limit, before)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                yield
        finally:
            Image.MAX_IMAGE_PIXELS = before


# -- checks before reading -------------------------------------------------------------------------------
def max_image_pixels(limit: int | None = None) -> int:
    """The pixel limit per image: ``limit`` if given, else ``$INCEPTION_RESNET_MAX_PIXELS``, else PIL's default."""
    source = "max_pixels"
    if limit is None:
        text = os.environ.get(MAX_PIXELS_ENV, "").strip()
        if not text:
            return DEFAULT_MAX_PIXELS
        source = MAX_PIXELS_ENV
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value.is_integer()):
            raise ValueError(f"{MAX_PIXELS_ENV}={text!r} is not a whole number of pixels (e.g. 200000000)")
        limit = int(value)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"{source} must be a positive whole number of pixels, got {limit!r}")
    return limit


FILE_KINDS = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def check_image_file(path: str | os.PathLike, max_pixels: int | None = None) -> tuple[int, int] | None:
    """Raise :class:`CorruptImageError` unless ``path`` is safe to read (see the module docstring).

    Returns the (width, height) the header declares, or None when PIL does not know the format (the
    decoder then decides). Nothing but the header is read.
    """
    path = os.fspath(path)
    try:
        info = os.stat(path)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise CorruptImageError(path, "a symbolic link loop (the link leads back to itself)") from None
        if error.errno == errno.ENOENT:
            what = "a broken symbolic link (its target does not exist)" if os.path.islink(path) else "no such file"
            raise CorruptImageError(path, what) from None
        raise CorruptImageError(path, first_line(error)) from None
    if stat.S_ISDIR(info.st_mode):
        raise CorruptImageError(path, "a folder, not an image file")
    if not stat.S_ISREG(info.st_mode):
        kind = next((name for test, name in FILE_KINDS if test(info.st_mode)), "not a regular file")
        raise CorruptImageError(path, f"{kind}, not an image file; it was not read")
    if info.st_size == 0:
        raise CorruptImageError(path, "an empty file")
    limit = max_image_pixels(max_pixels)
    size = header_size(path)
    if size is not None:
        width, height = size
        if width * height > limit:
            raise CorruptImageError(
                path,
                f"its header declares {width}x{height} = {width * height:,} pixels, more than the limit of "
                f"{limit:,} per image (a damaged or hostile file, or a huge image: set {MAX_PIXELS_ENV} to raise "
                "the limit)",
            )
    return size


def header_size(path: str) -> tuple[int, int] | None:
    """The (width, height) in an image file's header, read by PIL without decoding; None if PIL cannot tell."""
    try:
        with _PIL_LIMIT_LOCK:  # PIL's own size check off while only the header is read: the caller decides
            before = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = None
            try:
                with Image.open(path) as image:
                    return image.size
            finally:
                Image.MAX_IMAGE_PIXELS = before
    except (OSError, ValueError, SyntaxError):
        return None


def first_line(error: BaseException) -> str:
    """The gist of an error message, without torchvision's C++ source location."""
    lines = str(error).strip().splitlines()
    text = lines[-1] if lines else type(error).__name__
    return re.sub(r"^\w+, \S+\.cpp:\d+, ", "", text)


def read_encoded(path: str, max_pixels: int | None = None) -> torch.Tensor:
    """The bytes of an image file, once :func:`check_image_file` found it safe to read."""
    path = os.fspath(path)
    check_image_file(path, max_pixels)
    try:  # Python's reader: torchvision's cannot open a file whose name is not valid UTF-8
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as error:
        raise CorruptImageError(path, error.strerror or first_line(error)) from None
    if not data:
        raise CorruptImageError(path, "an empty file")
    return torch.frombuffer(bytearray(data), dtype=torch.uint8)


def decode_file(path: str | os.PathLike, max_pixels: int | None = None) -> torch.Tensor:
    """Check, read and decode an image file to an RGB C x H x W tensor (:class:`CorruptImageError` if not).

    The tensor is uint8, or uint16 for images of 16 bits per channel; ``max_pixels`` as :func:`max_image_pixels`.
    """
    path = os.fspath(path)
    return decode_bytes(read_encoded(path, max_pixels), path, max_pixels=max_pixels)


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
