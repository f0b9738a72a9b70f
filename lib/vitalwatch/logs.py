"""Quiet, predictable output: Python logging configured once, and streaming progress printed
only when it says something new.

- :func:`configure` — rich's handler on a terminal, timestamped plain lines otherwise (a file,
  a container's log), at INFO (``--verbose``: DEBUG; ``--quiet``: WARNING). Spark's own JVM
  logging is ``conf/log4j2.properties`` (see :mod:`vitalwatch.spark`).
- :class:`ProgressLog` — a query's progress when its batch changes; off a terminal at most
  one summary line a minute, so a log file grows with work done, not with time."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_configured: list[int] = []  # the level configure() set, once


def level_for(verbose: bool = False, quiet: bool = False) -> int:
    """The Python log level of ``--verbose`` / ``--quiet`` (quiet wins)."""
    return logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO


def spark_level(verbose: bool = False, quiet: bool = False) -> str:
    """Spark's root log level for the same flags (its default is WARN)."""
    return "ERROR" if quiet else "INFO" if verbose else "WARN"


def configure(verbose: bool = False, quiet: bool = False, stream: Any = None) -> int:
    """Configure the root logger once per process (a later call only changes the level);
    returns the level."""
    level = level_for(verbose, quiet)
    root = logging.getLogger()
    if not _configured:
        stream = stream or sys.stderr
        if stream.isatty():
            from rich.logging import RichHandler

            handler: logging.Handler = RichHandler(show_path=False, rich_tracebacks=False)
            handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
        else:
            handler = logging.StreamHandler(stream)
            handler.setFormatter(logging.Formatter(PLAIN_FORMAT, "%Y-%m-%dT%H:%M:%S%z"))
        root.addHandler(handler)
        for noisy in ("py4j", "urllib3", "kafka", "pymongo", "elastic_transport"):
            logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    _configured[:] = [level]
    root.setLevel(level)
    return level


def progress_line(name: str, p: dict[str, Any]) -> str:
    """One query's last trigger: batch, rows in, rate and duration."""
    return (f"{name}: batch {p['batchId']} in={p.get('numInputRows', 0)} rows "
            f"({p.get('processedRowsPerSecond', 0) or 0:.0f} rows/s), "
            f"{(p.get('durationMs') or {}).get('triggerExecution', 0)} ms")


class ProgressLog:
    """Streaming progress for people and for log files.

    Fed each tick with every query's last progress (plain dicts, ``StreamingQuery.lastProgress``):
    a query whose batch id did not change says nothing. On a terminal each new batch is a line;
    off a terminal the new batches are gathered and said as one summary line at most every
    ``every_s`` seconds."""

    def __init__(self, say: Callable[[str], None], tty: bool, every_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.say, self.tty, self.every_s, self.clock = say, tty, every_s, clock
        self._batch: dict[str, Any] = {}
        self._pending: dict[str, dict[str, Any]] = {}
        self._said_at: float | None = None

    def tick(self, queries: Iterable[Any]) -> None:
        """``on_tick`` of the pipeline runner: the active queries."""
        self.update((q.name, q.lastProgress) for q in queries)

    def update(self, progress: Iterable[tuple[str, dict[str, Any] | None]]) -> None:
        for name, p in progress:
            if p and self._batch.get(name) != p.get("batchId"):
                self._batch[name] = p.get("batchId")
                self._pending[name] = p
        if not self._pending:
            return
        now = self.clock()
        if self.tty:
            for name, p in self._pending.items():
                self.say(progress_line(name, p))
        elif self._said_at is None or now - self._said_at >= self.every_s:
            self.say("; ".join(progress_line(n, p) for n, p in self._pending.items()))
        else:
            return
        self._pending.clear()
        self._said_at = now
