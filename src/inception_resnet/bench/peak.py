"""The machine's limit for a CPU benchmark: its vector instruction sets, and the GEMM peak in fp32, bf16 and int8.

A square matrix product is the most efficient work a CPU does in a given precision; its throughput,
measured in the same process as the candidates, is the limit each row of a results file is read against
(:func:`gemm_peaks`, 2 operations per multiply-add). fp32 and bf16 take the better of ``torch.mm`` (MKL for
fp32, which on some CPUs is not the fastest library) and the same product as a 1x1 convolution through
oneDNN with prepacked weights (the kernels our convolutions run); int8 the better of ``torch._int_mm`` and
oneDNN's prepacked uint8 x int8 linear (int32 accumulation). :func:`cpu_flags` lists what the CPU offers for
these precisions.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Callable, Iterator

import torch
from torch import nn

from ..environment import cpu_flags  # noqa: F401  (the benchmarks name the CPU's flags)


def _best_seconds(fn: Callable[[], object], repeats: int) -> float:
    for _ in range(2):
        fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _onednn_product(size: int, dtype: torch.dtype, generator: torch.Generator) -> Callable[[], object] | None:
    """A ``size`` x ``size`` x ``size`` product as a 1x1 convolution with prepacked oneDNN weights, or None."""
    from ..inference.onednn import OneDNNConv2d

    if not torch.backends.mkldnn.is_available():
        return None
    conv = nn.Conv2d(size, size, 1, bias=False).to(dtype)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator))
    width = 64
    x = torch.randn(1, size, size // width, width, generator=generator).to(dtype)
    x = x.contiguous(memory_format=torch.channels_last)
    packed = OneDNNConv2d(conv, input_size=list(x.shape))
    return lambda: packed(x)


@contextlib.contextmanager
def _kernel_missing_warns(name: str) -> Iterator[None]:
    """Run a peak measurement; if this CPU or torch lacks its kernel, warn with the reason and go on."""
    try:
        yield
    except (RuntimeError, NotImplementedError, AttributeError) as error:
        warnings.warn(f"GEMM peak {name} left out: {type(error).__name__}: {error}", RuntimeWarning, stacklevel=3)


def gemm_peaks(size: int = 2048, repeats: int = 10) -> dict[str, float]:
    """TFLOP/s (TOP/s for int8) of a ``size`` x ``size`` matrix product, best of ``repeats``, by precision.

    Keys ``fp32``, ``bf16`` and ``int8`` hold the limits; ``<precision>_mm`` and ``<precision>_onednn`` the
    measurements behind each. Runs on the current torch thread count; a measurement whose kernel this CPU
    or torch lacks is left out, with a warning that says why.
    """
    flops = 2.0 * size**3
    generator = torch.Generator().manual_seed(0)
    peaks: dict[str, float] = {}
    with torch.inference_mode():
        for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
            a = torch.randn(size, size, generator=generator).to(dtype)
            b = torch.randn(size, size, generator=generator).to(dtype)
            peaks[f"{name}_mm"] = flops / _best_seconds(lambda a=a, b=b: torch.mm(a, b), repeats) / 1e12
            product = _onednn_product(size, dtype, generator)
            if product is not None:
                peaks[f"{name}_onednn"] = flops / _best_seconds(product, repeats) / 1e12
            peaks[name] = max(peaks[f"{name}_mm"], peaks.get(f"{name}_onednn", 0.0))
    a8 = torch.randint(-128, 128, (size, size), dtype=torch.int8, generator=generator)
    b8 = torch.randint(-128, 128, (size, size), dtype=torch.int8, generator=generator)
    with _kernel_missing_warns("int8_mm"):
        peaks["int8_mm"] = flops / _best_seconds(lambda: torch._int_mm(a8, b8), repeats) / 1e12
    with _kernel_missing_warns("int8_onednn"):
        u8 = torch.randint(0, 256, (size, size), dtype=torch.uint8, generator=generator)
        packed = torch.ops.onednn.qlinear_prepack(b8, [size, size])
        scales, zeros = torch.ones(size), torch.zeros(size, dtype=torch.int32)

        def qlinear() -> torch.Tensor:
            return torch.ops.onednn.qlinear_pointwise(
                u8, 1.0, 0, packed, scales, zeros, None, 1.0, 0, torch.float32, "none", [], ""
            )

        peaks["int8_onednn"] = flops / _best_seconds(qlinear, repeats) / 1e12
    if "int8_mm" in peaks or "int8_onednn" in peaks:
        peaks["int8"] = max(peaks.get("int8_mm", 0.0), peaks.get("int8_onednn", 0.0))
    return peaks
