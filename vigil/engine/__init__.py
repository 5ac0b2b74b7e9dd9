"""The engine: the shard (the compiled core that owns state and event time), the policy
that turns what it finds into records, facts and actions, the declared measures, and
the state a recovery store keeps."""

from __future__ import annotations
