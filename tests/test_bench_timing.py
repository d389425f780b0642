"""The benchmarks' side-by-side timing (benchmarks/timing.py): rounds, blocks and settling."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from timing import time_interleaved  # noqa: E402


def recorder(log, name, sleep_s=0.0):
    def run():
        log.append((name, time.perf_counter()))
        if sleep_s:
            time.sleep(sleep_s)
    return run


def runs_of(log):
    """The call sequence as (name, count) runs."""
    out = []
    for name, _ in log:
        if out and out[-1][0] == name:
            out[-1][1] += 1
        else:
            out.append([name, 1])
    return [tuple(r) for r in out]


def test_one_thread_blocks_of_one_untimed_and_five_timed_runs():
    log = []
    times = time_interleaved({"a": recorder(log, "a"), "b": recorder(log, "b")}, repeats=12, threads=1)
    assert {k: len(v) for k, v in times.items()} == {"a": 12, "b": 12}
    # Rounds alternate the sessions; each block is 1 untimed + up to 5 timed runs.
    assert runs_of(log) == [("a", 6), ("b", 6), ("a", 6), ("b", 6), ("a", 3), ("b", 3)]


def test_threads_settle_for_the_given_time_before_timing():
    log = []
    times = time_interleaved({"a": recorder(log, "a", 0.002), "b": recorder(log, "b", 0.002)}, repeats=5,
                             threads=2, settle_s=0.05)
    assert {k: len(v) for k, v in times.items()} == {"a": 5, "b": 5}
    seq = runs_of(log)
    assert [name for name, _ in seq] == ["a", "b"]
    # ~0.05 s of 2 ms untimed runs, then the 5 timed ones.
    for _, count in seq:
        assert count >= 5 + 10
    # The timed runs are the block's last ones and really timed: each at least its sleep.
    assert all(t >= 0.002 for v in times.values() for t in v)


def test_bad_and_empty_input():
    with pytest.raises(ValueError, match="repeats"):
        time_interleaved({"a": lambda: None}, repeats=0, threads=1)
    assert time_interleaved({}, repeats=3, threads=1) == {}
