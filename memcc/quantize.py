"""Nearest-state quantization of conductances (finite conductance states).

`nearest_state(values, states)` rounds every value to the nearest entry of a sorted 1-D array of
states by binary search (`numpy.searchsorted`): for a value v with s[i-1] < v <= s[i] the
result is s[i] when s[i] - v < v - s[i-1], else s[i-1]. **Ties go to the lower state.** Values
below the lowest state give the lowest state, values above the highest the highest; NaN stays
NaN. The MemTorch paper (ISCAS 2020) models finite conductance states the same way: each
programmed conductance is replaced by the nearest of N states (/work/shared/docs/devices.md).

The search runs in the op library's compiled routine (`ops/src/nearest_state.h`, the binary
search a CUDA kernel can share) when the library is built, and in NumPy otherwise; both give the
same indices (tests). `nearest_state_index` returns the index of the chosen state.
"""

from __future__ import annotations

import numpy as np


def _check_states(states) -> np.ndarray:
    s = np.asarray(states, dtype=np.float64)
    if s.ndim != 1 or s.size == 0:
        raise ValueError(f"states must be a non-empty 1-D array, got shape {s.shape}")
    if not np.all(np.isfinite(s)):
        raise ValueError("states must be finite")
    if s.size > 1 and np.any(np.diff(s) < 0):
        raise ValueError("states must be sorted in ascending order")
    return s


def nearest_state_index(values, sorted_states) -> np.ndarray:
    """Index (int64, shape of `values`) of the state nearest to each value; ties → lower state.

    NaN values get index -1.
    """
    s = _check_states(sorted_states)
    v = np.asarray(values, dtype=np.float64)
    native = _native_index(v, s)
    if native is not None:
        return native
    return _numpy_index(v, s)


def _native_index(v: np.ndarray, s: np.ndarray) -> np.ndarray | None:
    from memcc.runtime import native_routines

    lib = native_routines()
    if lib is None:
        return None
    values = np.ascontiguousarray(v, dtype=np.float64)
    states = np.ascontiguousarray(s, dtype=np.float64)
    out = np.empty(values.shape, dtype=np.int64)
    rc = lib.memcc_nearest_state_index(values.ctypes.data, values.size, states.ctypes.data, states.size,
                                       out.ctypes.data)
    if rc != 0:
        raise ValueError(f"nearest-state search refused its arguments (code {rc})")
    return out


def _numpy_index(v: np.ndarray, s: np.ndarray) -> np.ndarray:
    if s.size == 1:
        idx = np.zeros(v.shape, dtype=np.int64)
    else:
        # s[hi - 1] < v <= s[hi]; clamp so that both neighbours exist
        hi = np.clip(np.searchsorted(s, v, side="left"), 1, s.size - 1)
        lo = hi - 1
        take_hi = (s[hi] - v) < (v - s[lo])  # strict: a tie keeps the lower state
        idx = np.where(take_hi, hi, lo).astype(np.int64)
    return np.where(np.isnan(v), -1, idx)


def nearest_state(values, sorted_states) -> np.ndarray:
    """The nearest state to each value (float32, shape of `values`); ties → lower state."""
    s = _check_states(sorted_states)
    v = np.asarray(values, dtype=np.float64)
    idx = nearest_state_index(v, s)
    out = s[np.maximum(idx, 0)]
    out = np.where(idx < 0, np.nan, out)
    return out.astype(np.float32)
