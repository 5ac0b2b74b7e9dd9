"""Stopping on SIGTERM or Ctrl-C without a crash and without losing work.

Orchestrators stop a service with SIGTERM (`docker stop`, Kubernetes, systemd). Python's
default is to die on the spot, and as a container's PID 1 it ignores the signal until
the SIGKILL at the end of the grace period. Ctrl-C raised KeyboardInterrupt inside
whichever step was running, which Bytewax reported as a crash with a traceback.

Instead, during a run the first signal ends the input at each source partition's next
batch (`vigil.connectors.stoppable`), as if every partition had reached its end: what was
read is processed, written and snapshotted, and a run with a recovery store resumes
right after it. A second signal stops at once, as a kill would (the recovery store
then resumes from the last snapshot). Outside a run (`graceful=False`) Ctrl-C raises
`Interrupted`, and SIGTERM keeps its default, which stops at once even inside a long
C call (a Python handler waits for the interpreter: up to 30 s of connecting to Kafka);
only as PID 1, where that default is to ignore it, does SIGTERM raise `Interrupted` too.
Either way the process exits with 128 + the signal's number, as a shell reports it.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from types import FrameType, TracebackType
from typing import Any

log = logging.getLogger("vigil.run")

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """Stop now: the signal came outside a run, or was the second one."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class StopSignal:
    """SIGINT and SIGTERM handlers while in a `with` block (main thread only, since only
    it can take signals); the handlers in place before are put back after it."""

    def __init__(self, *, graceful: bool = False) -> None:
        self.graceful = graceful
        self.requested: int | None = None  # the first signal, once it came
        self._announced = threading.Lock()
        self._previous: dict[int, Any] = {}

    @property
    def exit_code(self) -> int | None:
        return None if self.requested is None else 128 + self.requested

    @property
    def name(self) -> str | None:
        return None if self.requested is None else signal.Signals(self.requested).name

    def __enter__(self) -> StopSignal:
        if threading.current_thread() is threading.main_thread():
            for signum in self._handled():
                self._previous[signum] = signal.signal(signum, self._on_signal)
        return self

    def _handled(self) -> tuple[signal.Signals, ...]:
        if self.graceful or os.getpid() == 1:
            return STOP_SIGNALS
        return (signal.SIGINT,)  # SIGTERM's default is the quickest stop (see above)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # Runs in the main thread between two bytecodes: set a flag, log nothing here.
        if self.graceful and self.requested is None:
            self.requested = signum
            return
        raise Interrupted(signum)

    def stopping(self) -> bool:
        """True once a stop is requested; the first caller logs it."""
        if self.requested is None:
            return False
        if self._announced.acquire(blocking=False):
            log.warning(
                "stop requested: ending the input after the events already read",
                extra={"signal": self.name, "again": "a second signal stops at once"},
            )
        return True
