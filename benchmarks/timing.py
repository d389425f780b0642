"""Timing several onnxruntime sessions side by side in one process.

Runs go in rounds, every session once per round, so that a change in the machine's load hits
all of them alike. In a round each session runs a block: untimed runs first, then `block`
timed ones, so that the timed runs find the session as a user's evaluation loop does, its
weights and buffers in cache and its thread pool awake:
 - With more than one intra-op thread the untimed part lasts `settle_s` seconds. A session's
   pool keeps its workers spinning for a while after each run (about 50 ms measured on the
   project's 2-core machine), and a session timed while another one's workers spin shares the
   cores with them: timed run by run, 2-thread medians came out up to 2x too slow, by how much
   depending on which session ran before.
 - With one thread (no pool) it is one run. Timed run by run, each of a single layer's
   sessions started with the others' data in cache: the layer without an effect measured 20-26%
   slower than in a loop of its own, and the ratios of the effects' costs came out lower.
"""

from __future__ import annotations

import time
from typing import Callable

SETTLE_S = 0.1  # twice the spinning measured after a run
BLOCK = 5


def time_interleaved(runs: dict[str, Callable[[], object]], repeats: int, threads: int,
                     settle_s: float = SETTLE_S, block: int = BLOCK) -> dict[str, list[float]]:
    """`repeats` timed runs (seconds) of each callable in `runs`, interleaved as above."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    if not runs:
        return {}
    if threads <= 1:
        settle_s = 0.0
    times: dict[str, list[float]] = {k: [] for k in runs}
    while len(times[next(iter(runs))]) < repeats:
        for k, run in runs.items():
            until = time.perf_counter() + settle_s
            run()
            while time.perf_counter() < until:
                run()
            for _ in range(min(block, repeats - len(times[k]))):
                t0 = time.perf_counter()
                run()
                times[k].append(time.perf_counter() - t0)
    return times
