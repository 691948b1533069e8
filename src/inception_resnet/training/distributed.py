"""Helpers for data-parallel training under ``torchrun`` (DDP over gloo on CPUs, NCCL on GPUs).

``torchrun`` sets ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE`` and the rendezvous variables; without them
:func:`init_distributed` returns a single-process context and every collective here is a no-op, so the
same training code runs under plain ``python``.

Data order: :class:`GlobalBatchSampler` makes the order of the images a pure function of ``(seed, epoch)``
and splits every *global* batch into one contiguous slice per process (and per accumulation micro-batch).
The set of images an optimiser step sees is therefore the same for any number of processes with the same
global batch, and a run resumed at step ``k`` of an epoch simply starts that epoch's order at batch ``k``:
that is what makes a resumed run continue exactly, and resuming on a different number of processes
possible.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Sampler


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: its rank among ``world_size`` processes and its device."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")
    backend: str | None = None
    owns_process_group: bool = False

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def restart_count() -> int:
    """How many times torchrun has restarted the workers (``--max-restarts``); 0 on the first attempt."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0)


def resolve_device(spec: str, local_rank: int = 0) -> torch.device:
    """``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.

    Under torchrun ``"cuda"`` and ``"auto"`` pick the GPU of the local rank.
    """
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {spec!r} was asked for but CUDA is not available; use --device cpu")
        if spec == "cuda":
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        return torch.device(spec)
    if spec == "cpu":
        return torch.device("cpu")
    try:
        return torch.device(spec)
    except RuntimeError as err:
        raise ValueError(f"unknown device {spec!r}; use auto, cpu, cuda or cuda:N") from err


def init_distributed(device: str = "auto", timeout_s: float = 1800.0) -> DistContext:
    """Join the process group torchrun set up (if any) and pick this process's device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    resolved = resolve_device(device, local_rank)
    if world_size <= 1:
        return DistContext(device=resolved)
    if resolved.type == "cuda":
        torch.cuda.set_device(resolved)
    backend = "nccl" if resolved.type == "cuda" else "gloo"
    owns = False
    if not dist.is_initialized():
        timeout = datetime.timedelta(seconds=timeout_s)
        store = _attempt_store(world_size, timeout)
        if store is None:
            dist.init_process_group(backend=backend, timeout=timeout)
        else:
            dist.init_process_group(backend=backend, store=store, rank=rank, world_size=world_size, timeout=timeout)
        owns = True
    return DistContext(rank, local_rank, world_size, resolved, dist.get_backend(), owns)


def _attempt_store(world_size: int, timeout: datetime.timedelta) -> dist.Store | None:
    """torchrun's agent store, namespaced by restart attempt; None when torchrun did not provide one.

    After ``--max-restarts`` restarts the workers, the agent's store still holds the previous attempt's
    connection details under the default keys, and a restarted worker may connect to a peer that no
    longer exists ("Connection refused"). A per-attempt prefix keeps each attempt's keys apart.
    """
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        return None
    store = dist.TCPStore(
        os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), world_size, is_master=False, timeout=timeout
    )
    run_id = os.environ.get("TORCHELASTIC_RUN_ID", "run")
    return dist.PrefixStore(f"inception_resnet/{run_id}/attempt_{restart_count()}/", store)


def shutdown(ctx: DistContext) -> None:
    """Leave the process group if :func:`init_distributed` created it."""
    if ctx.owns_process_group and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        dist.barrier()


def all_reduce(tensor: torch.Tensor, ctx: DistContext, op: str = "sum") -> torch.Tensor:
    """In-place sum or max over processes (identity in a single process)."""
    if ctx.distributed:
        reduce_op = {"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX}[op]
        dist.all_reduce(tensor, op=reduce_op)
    return tensor


def broadcast_object(obj: Any, ctx: DistContext, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every process."""
    if not ctx.distributed:
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=src)
    return holder[0]


def gather_objects(obj: Any, ctx: DistContext) -> list[Any]:
    """Every process's ``obj``, in rank order, on every process."""
    if not ctx.distributed:
        return [obj]
    gathered: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(gathered, obj)
    return gathered


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain module inside DDP and ``torch.compile`` wrappers."""
    while True:
        if isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def wrap_ddp(model: nn.Module, ctx: DistContext, sync_bn: bool = False) -> nn.Module:
    """``DistributedDataParallel`` around ``model`` (optionally with SyncBatchNorm) when running distributed."""
    if sync_bn and ctx.device.type != "cuda":
        raise ValueError(
            "SyncBatchNorm needs CUDA devices (PyTorch refuses it on CPU); drop --sync-bn for CPU training"
        )
    if not ctx.distributed:
        return model
    if sync_bn:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


class GlobalBatchSampler(Sampler[int]):
    """The indices this process loads, in order, for one epoch (see the module docstring).

    Each epoch is ``len(self) // micro_batch`` micro-batches of ``micro_batch = global_batch / (world_size *
    accum_steps)`` images; the last incomplete global batch is dropped. ``start_step`` skips the global
    batches a resumed run has already trained on.
    """

    def __init__(
        self,
        dataset_size: int,
        global_batch: int,
        *,
        world_size: int = 1,
        rank: int = 0,
        accum_steps: int = 1,
        seed: int = 0,
        shuffle: bool = True,
    ) -> None:
        split = world_size * accum_steps
        if global_batch % split:
            raise ValueError(
                f"the global batch of {global_batch} does not split evenly over {world_size} process(es) x "
                f"{accum_steps} accumulation step(s); choose a batch size divisible by {split}"
            )
        if dataset_size < global_batch:
            raise ValueError(
                f"the training set has {dataset_size} images, fewer than one global batch of {global_batch}; "
                "lower the batch size or use more images"
            )
        self.dataset_size = dataset_size
        self.global_batch = global_batch
        self.world_size = world_size
        self.rank = rank
        self.accum_steps = accum_steps
        self.micro_batch = global_batch // split
        self.seed = seed
        self.shuffle = shuffle
        self.epoch = 0
        self.start_step = 0

    @property
    def steps_per_epoch(self) -> int:
        return self.dataset_size // self.global_batch

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        """Select the epoch's order and the first global batch to yield."""
        if not 0 <= start_step <= self.steps_per_epoch:
            raise ValueError(f"start_step must lie in 0..{self.steps_per_epoch}, got {start_step}")
        self.epoch = epoch
        self.start_step = start_step

    def epoch_order(self, epoch: int) -> np.ndarray:
        """The order of all images in ``epoch``: a pure function of ``(seed, epoch)``."""
        if not self.shuffle:
            return np.arange(self.dataset_size)
        return np.random.default_rng([self.seed, epoch]).permutation(self.dataset_size)

    def __iter__(self) -> Iterator[int]:
        order = self.epoch_order(self.epoch)
        chunk_size = self.global_batch // self.accum_steps  # one micro-batch of every process together
        for step in range(self.start_step, self.steps_per_epoch):
            batch = order[step * self.global_batch : (step + 1) * self.global_batch]
            for micro in range(self.accum_steps):
                chunk = batch[micro * chunk_size : (micro + 1) * chunk_size]
                mine = chunk[self.rank * self.micro_batch : (self.rank + 1) * self.micro_batch]
                yield from (int(i) for i in mine)

    def __len__(self) -> int:
        return (self.steps_per_epoch - self.start_step) * self.accum_steps * self.micro_batch
