"""What every part of Vigil uses: errors, event time, ids, words, logs, locks, stopping,
zones and the output streams' names. Imports nothing else of Vigil's."""

from __future__ import annotations
