"""Where events come from and how they are read: the event catalogue and its checks,
the decoder, a source partition's intake (decoding and watermark), and simulated fleets."""

from __future__ import annotations
