"""Progress bars on stderr, for a terminal: a file replay's (`vigil run`) and a simulated
stream's (`vigil simulate`). tqdm draws them; while one is drawn, Vigil's log lines go
through it (tqdm's logging redirect), so a line is printed above the bar, never over it."""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any, TextIO

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from vigil.ops.metrics import Metrics

REDRAW = 0.5  # seconds between redraws


def bar(stream: TextIO, **options: Any) -> tqdm[Any]:
    """A bar on `stream`, redrawn at most every REDRAW seconds, gone when it closes."""
    return tqdm(file=stream, mininterval=REDRAW, dynamic_ncols=True, leave=False, **options)


def logs_above(progress: tqdm[Any]) -> ExitStack:
    """While the returned stack is open, Vigil's log lines are printed above `progress`."""
    stack = ExitStack()
    stack.enter_context(logging_redirect_tqdm([logging.getLogger("vigil")], tqdm_class=tqdm))
    stack.callback(progress.close)
    return stack


class Progress:
    """A file replay's bar: the input read (with the share and the time left, when its
    size is known), and the events processed so far. Its thread reads the metrics every
    REDRAW seconds; it never touches stdout or the output files."""

    def __init__(
        self,
        metrics: Metrics,
        done_bytes: Callable[[], int],
        total_bytes: int | None,
        stream: TextIO = sys.stderr,
        interval: float = REDRAW,
    ) -> None:
        self.metrics = metrics
        self.done_bytes = done_bytes
        self.interval = interval
        self.started = time.monotonic()
        self.bar = bar(stream, total=total_bytes, unit="B", unit_scale=True, unit_divisor=1024)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vigil-progress", daemon=True)
        self._logs = logs_above(self.bar)

    def start(self) -> Progress:
        self._thread.start()
        return self

    def events(self) -> int:
        m = self.metrics
        accepted = sum(m.by_label("vigil_events_total", "type").values())
        rejected = sum(m.by_label("vigil_dead_letters_total", "reason").values())
        return int(accepted + rejected + m.value("vigil_duplicate_events_total"))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            events = self.events()
            elapsed = time.monotonic() - self.started
            rate = events / elapsed if elapsed > 0 else 0.0
            self.bar.set_postfix_str(f"{events:,} events, {rate:,.0f}/s", refresh=False)
            self.bar.update(self.done_bytes() - self.bar.n)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._logs.close()
