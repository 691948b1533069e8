"""What a results file or report must say about where it was made: date, machine, device, versions, command.

One collector (:func:`environment`) and one writer (:func:`environment_lines`) for the benchmark files
(``docs/results/``) and the study reports.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import platform
import subprocess
import sys
from typing import Any

import torch

from .version import __version__


def cpu_name() -> str:
    """The processor's model name (``/proc/cpuinfo``), else what ``platform`` knows."""
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown"


# The /proc/cpuinfo flags that decide which kernels the precisions get (AVX-512 families, VNNI, AMX).
_RELEVANT_FLAGS = ("avx2", "fma", "avx512", "vnni", "amx", "bf16", "fp16")


def cpu_flags() -> list[str]:
    """The CPU's vector and matrix instruction flags (``/proc/cpuinfo``; torch's capability names elsewhere)."""
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = line.split(":", 1)[1].split()
                    return sorted(f for f in set(flags) if any(key in f for key in _RELEVANT_FLAGS))
    get = getattr(torch.cpu, "get_capabilities", None)
    caps = dict(get()) if get is not None else {}
    return sorted(k for k, v in caps.items() if v is True and any(key in k for key in _RELEVANT_FLAGS))


def nvidia_driver() -> str | None:
    """The NVIDIA driver version from ``nvidia-smi``, or None without one."""
    with contextlib.suppress(OSError, subprocess.SubprocessError, IndexError):
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        )
        return out.stdout.strip().splitlines()[0]
    return None


def command_line() -> str:
    """This process's command line, as a user would type it."""
    program = sys.argv[0]
    if os.path.basename(program) == "__main__.py":
        program = "python -m inception_resnet"
    elif os.path.isabs(program) and os.path.dirname(program) != os.getcwd():
        program = os.path.basename(program)
    return " ".join([program, *sys.argv[1:]])


def _version(module: str) -> str | None:
    try:
        return __import__(module).__version__
    except ImportError:
        return None


def environment(command: str | None = None) -> dict[str, Any]:
    """Date (UTC), host, CPU and threads, library versions, GPU, driver, CUDA and cuDNN when there is one, and
    the command (``command``, else this process's command line)."""
    env: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "host": platform.node(),
        "platform": platform.platform(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "cpu_flags": cpu_flags(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": _version("torchvision"),
        "inception_resnet": __version__,
        "timm": _version("timm"),
        "onnxruntime": _version("onnxruntime"),
        "command": command if command is not None else command_line(),
    }
    if torch.cuda.is_available():
        env.update(
            {
                "gpu": torch.cuda.get_device_name(0),
                "gpu_count": torch.cuda.device_count(),
                "driver": nvidia_driver(),
                "cuda": torch.version.cuda,
                "cudnn": torch.backends.cudnn.version(),
            }
        )
    return env


def environment_lines(env: dict[str, Any]) -> list[str]:
    """The head of a results file or report as Markdown bullets: date, machine, versions, command, note."""
    if env.get("gpu"):
        device = f"GPU: {env['gpu']} (x{env.get('gpu_count', 1)}), driver {env.get('driver')}, CUDA {env.get('cuda')}"
        device += f", cuDNN {env['cudnn']}" if env.get("cudnn") else ""
    else:
        device = "CPU only"
    cpu = f"CPU: {env.get('cpu')}, {env.get('cpu_count')} logical cores"
    if env.get("torch_threads") is not None:
        cpu += f", {env['torch_threads']} torch threads"
    if env.get("cpu_flags"):
        cpu += f" (flags: {' '.join(env['cpu_flags'])})"
    names = [
        ("inception-resnet", "inception_resnet"),
        ("torch", "torch"),
        ("torchvision", "torchvision"),
        ("timm", "timm"),
        ("onnxruntime", "onnxruntime"),
        ("Python", "python"),
    ]
    versions = ", ".join(f"{label} {env[key]}" for label, key in names if env.get(key) is not None)
    lines = [
        f"- Date: {env.get('date', '?')}",
        f"- Machine: {device}; {cpu}; {env.get('platform', '')}".rstrip("; "),
        f"- Versions: {versions}",
    ]
    if env.get("command"):
        lines.append(f"- Command: `{env['command']}`")
    if env.get("note"):
        lines.append(f"- Note: {env['note']}")
    return lines
