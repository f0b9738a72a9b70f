"""What the benchmark calls sustained: drained, complete and, for the soak, a backlog that stopped
growing rather than one that absorbed the load."""

from __future__ import annotations

import pytest

from vitalwatch.bench.endtoend import _batch_ms, backlog_growth, is_sustained


def test_a_saw_tooth_that_settled_is_flat_and_a_climbing_one_is_not() -> None:
    # 300 s of send sampled every 15 s: a backlog that settled after a minute ...
    settled = [(t, 60_000 + (20_000 if t % 30 else 0)) for t in range(0, 301, 15)]
    assert backlog_growth(settled, 300) == pytest.approx(1.0)
    # ... and one that grows by 2,000 readings a second
    climbing = [(t, 2000 * t) for t in range(0, 301, 15)]
    assert backlog_growth(climbing, 300) == pytest.approx(600_000 / 390_000)
    assert backlog_growth([(5, 10), (250, 10)], 300) is None  # no sample in the middle third


@pytest.mark.parametrize(("drained", "agree", "growth", "limit", "expected"), [
    (40.0, True, None, None, True),          # an e2e load: drained and complete
    (None, True, 1.0, None, False),          # never drained
    (40.0, False, 1.0, 1.25, False),         # a store missed readings
    (40.0, True, 1.25, 1.25, True),          # the backlog stopped growing
    (40.0, True, 1.8, 1.25, False),          # absorbed by a growing backlog, not kept up with
    (40.0, True, None, 1.25, False),         # growth not measured: not shown
])
def test_sustained_needs_drained_complete_and_kept_up(drained, agree, growth, limit, expected) -> None:
    assert is_sustained(drained, agree, growth, limit) is expected


def test_a_triggers_time_is_its_trigger_execution() -> None:
    assert _batch_ms({"durationMs": {"triggerExecution": 1234, "addBatch": 1000}}) == 1234.0
    assert _batch_ms({"batchId": 3}) == 0.0  # a progress without durations counts nothing
