"""The command line and what runs a dataflow: `vigil run`, `simulate`, `explain`..."""

from __future__ import annotations
