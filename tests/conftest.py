"""Shared test settings: a fixed seed, no network, and an import order that keeps TensorFlow and torch apart."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402
import torch._dynamo  # noqa: E402,F401  (imported before TensorFlow: the other order crashes the process)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
