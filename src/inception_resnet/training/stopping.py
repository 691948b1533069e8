"""How a run stops early: SIGTERM/SIGINT as a flag, a non-finite loss as an error, and a crash hook for tests."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Any

from .distributed import DistContext

# "<rank>:<global step>:<marker file>": SIGKILL once (tests). Rank "*" is any rank; a marker written as
# "node:<file>" also kills the torchrun agent that started the process (the whole node dies).
CRASH_ENV = "INCEPTION_RESNET_TEST_CRASH"


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the weights were not updated with it."""


class NonFiniteWeightsError(NonFiniteLossError):
    """The weights became NaN or infinite; no checkpoint was written with them."""


class StopRequest:
    """Turns SIGTERM / SIGINT into a flag checked after every step (a second SIGINT interrupts at once)."""

    def __init__(self) -> None:
        self.signal_name: str | None = None
        self.signal_number = 0
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._previous[sig] = signal.signal(sig, self._handle)

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, _frame: Any) -> None:
        if self.signal_name is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal_number = signum
        self.signal_name = signal.Signals(signum).name

    @property
    def requested(self) -> bool:
        return self.signal_name is not None


def maybe_crash_for_test(ctx: DistContext, global_step: int) -> None:
    spec = os.environ.get(CRASH_ENV)
    if not spec:
        return
    rank, step, marker = spec.split(":", 2)
    node = marker.startswith("node:")
    marker = marker.removeprefix("node:")
    if (rank == "*" or int(rank) == ctx.rank) and int(step) == global_step and not Path(marker).exists():
        Path(marker).write_text(f"killed rank {ctx.rank} at step {step}{' with its agent' if node else ''}\n")
        if node:
            os.kill(os.getppid(), signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)
