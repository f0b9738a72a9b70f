"""Trigger choice shared by every streaming query."""

from __future__ import annotations

from pyspark.sql.streaming import DataStreamWriter

from vitalwatch.config import Settings


def apply_trigger(writer: DataStreamWriter, settings: Settings, available_now: bool) -> DataStreamWriter:
    """``available_now``: process what is there and stop (catch-up, tests); else run forever
    on the configured interval."""
    if available_now:
        return writer.trigger(availableNow=True)
    return writer.trigger(processingTime=settings.streaming.trigger_interval)
