"""Weights → conductances, per layer (MemTorch paper, ISCAS 2020, eq. 1; /work/shared/docs/devices.md).

A layer's weight matrix `W` has shape `[K, N]` (inputs × outputs, the orientation of
`ai.memcc::MemristiveMatMul`'s `G`). With `G_on = 1/r_on`, `G_off = 1/r_off` and
`w_max = max |W|`:

**double** (differential, two crossbars, eq. 1 with `w_min = 0`)::

    G[0] = (G_on − G_off) · max(W, 0)  / w_max + G_off      (positive crossbar)
    G[1] = (G_on − G_off) · max(−W, 0) / w_max + G_off      (negative crossbar)
    weight_scale = w_max / (G_on − G_off),   W = weight_scale · (G[0] − G[1])

**single** (one crossbar plus a reference column at the mid conductance)::

    G[0] = G_off + (G_on − G_off) · (W + w_max) / (2 w_max)
    g_ref = (G_on + G_off) / 2
    weight_scale = 2 w_max / (G_on − G_off),   W = weight_scale · (G[0] − g_ref)

All-zero weights use `w_max = 1` in these formulas (no division by zero): every device sits at
G_off (double) or at g_ref (single), and the layer computes 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SCHEMES = ("double", "single")


@dataclass(frozen=True)
class MappedWeights:
    """Conductances of one layer: `G` [S, K, N] float32 (siemens), `weight_scale`, `g_ref`."""

    G: np.ndarray
    weight_scale: float
    g_ref: float

    @property
    def scheme(self) -> str:
        return "double" if self.G.shape[0] == 2 else "single"

    def effective_weights(self) -> np.ndarray:
        """`weight_scale · D` in float64: the weights the crossbar computes with."""
        G = self.G.astype(np.float64)
        D = G[0] - G[1] if G.shape[0] == 2 else G[0] - self.g_ref
        return self.weight_scale * D


def _check_resistances(r_on: float, r_off: float) -> tuple[float, float]:
    r_on, r_off = float(r_on), float(r_off)
    if not (math.isfinite(r_on) and math.isfinite(r_off) and 0 < r_on < r_off):
        raise ValueError(f"need finite 0 < r_on < r_off, got r_on={r_on:g}, r_off={r_off:g}")
    return r_on, r_off


def map_weights(W, *, r_on: float, r_off: float, scheme: str = "double") -> MappedWeights:
    """Map a weight matrix `W` [K, N] to conductances with the given scheme (see module doc)."""
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {list(SCHEMES)}, got {scheme!r}")
    r_on, r_off = _check_resistances(r_on, r_off)
    W = np.asarray(W, dtype=np.float64)
    if W.ndim != 2:
        raise ValueError(f"weights must be a [K, N] matrix, got shape {list(W.shape)}")
    if not np.all(np.isfinite(W)):
        raise ValueError("weights contain NaN or infinity")
    g_on, g_off = 1.0 / r_on, 1.0 / r_off
    window = g_on - g_off
    w_max = float(np.max(np.abs(W))) if W.size else 0.0
    if w_max == 0.0:
        w_max = 1.0
    # weight_scale and g_ref become float32 ONNX attributes; round them first so that the stored
    # conductances are consistent with the values the op will read.
    if scheme == "double":
        pos = window * np.maximum(W, 0.0) / w_max + g_off
        neg = window * np.maximum(-W, 0.0) / w_max + g_off
        G = np.clip(np.stack([pos, neg]), g_off, g_on)
        return MappedWeights(G.astype(np.float32), _f32(w_max / window), 0.0)
    # g_off + window·(W + w_max)/(2 w_max) written as g_ref + window·W/(2 w_max).
    g_ref = _f32((g_on + g_off) / 2.0)
    G = np.clip(g_ref + window * W / (2.0 * w_max), g_off, g_on)[None]
    return MappedWeights(G.astype(np.float32), _f32(2.0 * w_max / window), g_ref)


def _f32(x: float) -> float:
    return float(np.float32(x))


def map_weights_for_device(W, device, scheme: str = "double") -> MappedWeights:
    """`map_weights` with the nominal resistance window of a `memcc.devices.DeviceModel`
    (parameters given as distributions at their means; see `memcc.devices.nominal_window`)."""
    from memcc.devices import nominal_window

    r_on, r_off = nominal_window(device)
    return map_weights(W, r_on=r_on, r_off=r_off, scheme=scheme)
