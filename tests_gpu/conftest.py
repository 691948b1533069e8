"""The CUDA checks need a GPU: without one, stop at once with a message (never a silent skip)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]  # the package without installing it, and tests/ for its helpers


def pytest_configure(config: pytest.Config) -> None:
    if not torch.cuda.is_available():
        pytest.exit("tests_gpu checks the CUDA code paths and needs a CUDA device; run the CPU suite with "
                    "`make test`", returncode=2)
