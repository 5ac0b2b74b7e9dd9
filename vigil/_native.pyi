# The compiled shard engine (native/src/lib.rs), run by vigil.engine.shard, and the decoder of
# the common valid event (native/src/intake.rs), run by vigil.intake.reader.
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from vigil.config.settings import Settings
from vigil.engine.measures import Compiled

T = TypeVar("T")

class ShardCore:
    def __init__(
        self,
        settings: Settings,
        event_type: type,
        tick_type: type,
        to_iso: Any,
        known: frozenset[str],
        memo_size: int,
        declared: Compiled,
    ) -> None: ...
    # Health records (stream, record), and findings (the classes below) in their order.
    def process(self, items: Iterable[Any]) -> list[Any]: ...
    def take_counts(self) -> dict[str, int]: ...
    def take_type_counts(self) -> dict[str, int]: ...
    @property
    def tenant_count(self) -> int: ...
    @property
    def pending_count(self) -> int: ...
    @property
    def watermark(self) -> int | None: ...
    @property
    def zones(self) -> dict[str, int]: ...
    @property
    def cached(self) -> tuple[int, int, int]: ...
    def tenant_ids(self) -> list[str]: ...
    def export_tenant(self, tenant_id: str, cls: Callable[[str, int], T]) -> T | None: ...
    def take_changed(self) -> list[str]: ...
    def touch_all(self) -> None: ...
    def plain_state(self) -> dict[str, Any]: ...
    def seen_day_counts(self) -> dict[int, int]: ...
    def seen_day(self, day: int) -> list[str]: ...
    def restore(self, state: Any, reset_peaks: bool) -> None: ...

# What the core finds (native/src/findings.rs), for vigil.engine.policy.

class Context:
    segment: str | None
    score: int | None
    zone: str | None
    reasons: str
    cooldowns: dict[str, int]

class Late:
    event: Any

class Crossed:
    tenant_id: str
    signal: int
    measured: Any
    other: Any
    history: tuple[int, float] | None
    stalled: tuple[int, int] | None
    at: int
    context: Context

class Cleared:
    tenant_id: str
    signal: int
    at: int

class Stepped:
    at: int

class ZoneChanged:
    tenant_id: str
    at: int
    score: int
    zone: str
    from_zone: str | None
    context: Context

class ScoreDropped:
    tenant_id: str
    at: int
    score: int
    zone: str
    peak: float
    context: Context

class KeyRefused:
    measure: str
    tenant_id: str
    key: str | None
    at: int

class DayEnded:
    at: int
    forgotten: list[str]

class Decoder:
    def __init__(
        self,
        event_type: type,
        segments: list[str],
        max_id_length: int,
        few_attrs: int,
        epoch_range: tuple[int, int],
        attrs: dict[str, list[tuple[str, bool, str, tuple[str, ...]]] | None],
        loads: Callable[[bytes], Any],
        no_watermark: int,
    ) -> None: ...
    def event(
        self, obj: dict[str, Any], watermark: int, source: str, position: Any
    ) -> Any | None: ...
    def take_lines(self, intake: Any, lines: list[bytes], line: int) -> tuple[list[Any], int]: ...

class ShardSplitter:
    """Tenants onto shards (CRC-32 of the tenant id, modulo the shards)."""

    def __init__(
        self,
        shards: int,
        event_type: type,
        tick_type: type,
        fleet: list[tuple[str, str, list[tuple[str, str]], str]] = ...,
    ) -> None: ...
    # One list per shard of a batch's events, each ending with the batch's ticks, and
    # before each tick a note (a tuple of (measure, value, time)) of what the fleet used.
    def split(self, chunk: Iterable[Any]) -> list[list[Any]]: ...
    def shard_of(self, tenant_id: str) -> int: ...
