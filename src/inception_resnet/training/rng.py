"""Random-number plumbing for exact resumption: per-sample augmentation seeds and checkpoint-safe RNG states."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset


@contextlib.contextmanager
def isolated_rng(seed: int) -> Iterator[None]:
    """Seed torch's (CPU), numpy's and Python's global generators for a block, then put their states back.

    Only the CPU generator is seeded: ``torch.manual_seed`` would also queue a lazy seeding of every
    accelerator backend, and each queued call formats the whole Python stack, which costs more than the
    augmentation it guards when done once per image. The CPU stream is the same either way.
    """
    py_state = random.getstate()
    np_state = np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed % 2**32)
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


class PerSampleSeeds(Dataset):
    """A training dataset whose random augmentation of item ``i`` depends only on ``(seed, epoch, i)``.

    That makes the augmentation independent of the worker count and of where a resumed run restarts,
    and leaves the global generators (dropout) untouched.
    """

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset = dataset
        self.seed = seed
        self.epoch = 0
        self.classes = list(dataset.classes)
        self.targets = getattr(dataset, "targets", None)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        with isolated_rng(((self.seed * 1_000_003 + self.epoch) * 1_000_003 + index) % 2**63):
            return self.dataset[index]


def capture_rng(device: torch.device) -> dict[str, Any]:
    """This process's torch (CPU and CUDA), numpy and Python random states, as checkpoint-safe values."""
    np_state = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": {"version": py_version, "state": list(py_state), "gauss": py_gauss},
    }


def restore_rng(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)
    np_state = state["numpy"]
    np.random.set_state(
        (
            "MT19937",
            np_state["keys"].numpy().astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["cached_gaussian"],
        )
    )
    python = state["python"]
    random.setstate((python["version"], tuple(python["state"]), python["gauss"]))
