"""A progress line on stderr for file replays run from a terminal."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

from vigil.ops.metrics import Metrics


def format_progress(events: int, elapsed: float, done_bytes: int, total_bytes: int | None) -> str:
    rate = events / elapsed if elapsed > 0 else 0.0
    text = f"{events:,} events, {rate:,.0f}/s"
    if total_bytes and done_bytes:
        share = min(1.0, done_bytes / total_bytes)
        left = elapsed * (1 - share) / share if share > 0 else 0.0
        text += f", {share:.0%} of the input, ETA {int(left) // 60}:{int(left) % 60:02d}"
    return text


class Progress:
    """Redraws one line every `interval` seconds until stopped; never touches stdout or
    the output files."""

    def __init__(
        self,
        metrics: Metrics,
        done_bytes: Callable[[], int],
        total_bytes: int | None,
        stream: TextIO = sys.stderr,
        interval: float = 0.5,
    ) -> None:
        self.metrics = metrics
        self.done_bytes = done_bytes
        self.total_bytes = total_bytes
        self.stream = stream
        self.interval = interval
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vigil-progress", daemon=True)

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
            line = format_progress(
                self.events(), time.monotonic() - self.started, self.done_bytes(), self.total_bytes
            )
            self.stream.write(f"\r\x1b[K{line}")
            self.stream.flush()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.stream.write("\r\x1b[K")
        self.stream.flush()
