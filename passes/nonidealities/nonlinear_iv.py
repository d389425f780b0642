"""`NonlinearIV`: devices pass the current of their I-V curve at the applied voltage.

The op multiplies f(v) instead of v (docs/op-spec.md: f(v) = iv_a·sinh(iv_b·v)), with the
conductances as programmed, i.e. as the device defines them:

- ``data_driven``: I = a·G·sinh(b·V), G = 1/R  →  iv_a = a, iv_b = b (a_p = a_n and b_p = b_n
  required: the op has one curve for both polarities);
- ``stanford_pku``: I = I0·exp(−g/g0)·sinh(V/V0) with the conductance defined at the read
  voltage, G = I(v_read)/v_read  →  f(v) = v_read·sinh(v/V0)/sinh(v_read/V0), i.e.
  iv_a = v_read / sinh(v_read/V0), iv_b = 1/V0;
- devices with a linear I-V (ideal, linear_ion_drift, vteam): an error, there is nothing to
  model.

Parameters are the nominal device's (distributions at their mean). No parameters of its own.

Range of float32. The op evaluates f and the column currents in float32, where a result beyond
float32's largest value F = 3.4e38 is infinite (docs/op-spec.md). With the default per-vector
input scaling every input vector puts its largest element at V_max (``max_input_voltage``), so:

- **error** (ConfigError) when f(V_max) > F, or when the largest current a layer can sum,
  K · max(G) · f(V_max) (K rows, its largest programmed conductance), exceeds F: every read
  would overflow; the message gives the largest V_max that fits;
- **warning** (a note in the report's summary) when, with ``input_range`` 0, the amplification
  over the linear device, at most f(V_max)/V_max per layer, compounds over the longest chain of
  L mapped layers (the next layer's input scale carries it: op step 8) to (f(V_max)/V_max)^L > F:
  the outputs then overflow for inputs of order 1, but whether they do depends on the weights,
  the data and the digital layers between, and a sweep over V_max may want such points. Ops
  that bound or renormalise their output (Softmax, Sigmoid, LayerNormalization, ...) end a chain.
"""

from __future__ import annotations

import math

import numpy as np
from onnx import numpy_helper

from ..base import OP_TYPE
from .base import fail
from .runtime_base import RuntimeNonideality

LOG_FLOAT32_MAX = math.log(float(np.finfo(np.float32).max))

#: ops whose output does not scale with their input's magnitude: amplification stops there
_CHAIN_RESETS = frozenset({
    "Softmax", "Hardmax", "Sigmoid", "HardSigmoid", "Tanh", "Softsign", "Sign", "Erf", "Sin", "Cos",
    "LayerNormalization", "InstanceNormalization", "GroupNormalization", "LpNormalization",
    "MeanVarianceNormalization", "RMSNormalization", "SimplifiedLayerNormalization",
    "ArgMax", "ArgMin", "Shape", "Size",
})


def log_f(a: float, b: float, v: float) -> float:
    """ln(a·sinh(b·v)) for a, b, v > 0, without overflowing where sinh would."""
    x = b * v
    log_sinh = x + math.log1p(-math.exp(-2 * x)) - math.log(2) if x > 1e-6 else math.log(x)
    return math.log(a) + log_sinh


def largest_voltage(a: float, b: float, log_limit: float) -> float:
    """The V with ln(a·sinh(b·V)) = log_limit."""
    return math.asinh(math.exp(log_limit - math.log(a))) / b


def longest_chain(graph, mapped: set[str]) -> int:
    """Most `mapped` MemristiveMatMul nodes on one path through `graph` (restarting after ops in
    `_CHAIN_RESETS`)."""
    nodes = list(graph.node)
    producer = {o: i for i, n in enumerate(nodes) for o in n.output if o}
    waiting = [{producer[t] for t in n.input if t in producer} for n in nodes]
    users: list[list[int]] = [[] for _ in nodes]
    for i, w in enumerate(waiting):
        for p in w:
            users[p].append(i)
    depth: dict[str, int] = {}
    ready = [i for i, w in enumerate(waiting) if not w]
    deepest = 0
    while ready:  # topological order, whatever order the pipeline left the nodes in
        i = ready.pop()
        n = nodes[i]
        d = 0 if n.op_type in _CHAIN_RESETS else max((depth.get(t, 0) for t in n.input if t), default=0)
        if n.op_type == OP_TYPE and n.name in mapped:
            d += 1
        deepest = max(deepest, d)
        for o in n.output:
            depth[o] = d
        for u in users[i]:
            waiting[u].discard(i)
            if not waiting[u]:
                ready.append(u)
    return deepest


def _scalar(p: dict, name: str, device: str) -> float:
    v = np.asarray(p[name], dtype=float)
    if v.size != 1:
        fail("nonlinear", f"device {device!r}: parameter {name!r} must be one value, got {v.size}")
    return float(v.reshape(()))


def iv_coefficients(device) -> tuple[float, float]:
    """(iv_a, iv_b) of `device` (a `DeviceModel` without distributions); ConfigError if linear."""
    name = device.name
    p = device._need()
    if name == "data_driven":
        a_p, a_n = _scalar(p, "a_p", name), _scalar(p, "a_n", name)
        b_p, b_n = _scalar(p, "b_p", name), _scalar(p, "b_n", name)
        if not (math.isclose(a_p, a_n) and math.isclose(b_p, b_n)):
            fail("nonlinear", f"device {name!r}: asymmetric I-V (a_p={a_p:g}, a_n={a_n:g}, b_p={b_p:g}, "
                              f"b_n={b_n:g}); the op models one sinh curve for both polarities")
        return a_p, b_p
    if name == "stanford_pku":
        v_read, v0 = _scalar(p, "read_voltage", name), _scalar(p, "V_0", name)
        return v_read / math.sinh(v_read / v0), 1.0 / v0
    fail("nonlinear", f"device {name!r} has a linear I-V (I = G·V); nothing to model")


class NonlinearIV(RuntimeNonideality):
    """The device model's I-V nonlinearity at read (``iv_a``, ``iv_b`` from the device)."""

    name = "nonlinear"
    PARAMETERS = ()
    REPEAT_HINT = "it sets the device's one I-V curve (iv_a, iv_b) on every layer; give it once"

    def settings(self) -> dict:
        return {}

    def prepare(self, ctx) -> None:
        self._iv = iv_coefficients(ctx.nominal_device)
        self.check_range(ctx)

    def check_range(self, ctx) -> None:
        """ConfigError / report note when float32 cannot hold the currents (module docstring)."""
        a, b = self._iv
        v_max = float(ctx.options.max_input_voltage)
        if not (a > 0 and b > 0):
            return
        lf = log_f(a, b, v_max)
        inits = {t.name: t for t in ctx.graph.initializer}
        layers = [rec for rec in ctx.layers if rec.mapped]
        # a column sums K rows, so the layer with the largest K·max(G) overflows first
        worst, log_rows = None, -math.inf
        for rec in layers:
            g = numpy_helper.to_array(inits[rec.weight]) if rec.weight in inits else None
            g_max = float(np.max(np.abs(g))) if g is not None and g.size else 0.0
            if g_max > 0 and math.log(rec.K * g_max) > log_rows:
                worst, log_rows = (rec, g_max), math.log(rec.K * g_max)
        log_limit = LOG_FLOAT32_MAX - max(log_rows, 0.0)
        if lf > log_limit:
            top = np.finfo(np.float32).max
            where = ""
            if worst is not None and log_rows > 0:
                rec, g_max = worst
                where = (f", and layer {rec.source or rec.node} sums up to K*max(G)*f(V_max) = "
                         f"{_exp_text(lf + log_rows)} A (K={rec.K} rows, G up to {g_max:.3g} S)")
            fail(self.name, f"at max_input_voltage {v_max:g} V the device's I-V curve gives f(V_max) = "
                            f"iv_a*sinh(iv_b*V_max) = {_exp_text(lf)} (iv_b*V_max = {b * v_max:.3g}){where}, "
                            f"beyond float32's {top:.3g}: every read would be inf/NaN; use max_input_voltage "
                            f"(--max-input-voltage) <= {_down(largest_voltage(a, b, log_limit))} V")
        if float(ctx.options.input_range) > 0:
            return  # a fixed input range clamps each layer's inputs: the gain does not compound
        log_gain = lf - math.log(v_max)
        depth = longest_chain(ctx.graph, {rec.node for rec in layers})
        if log_gain <= 0 or depth * log_gain <= LOG_FLOAT32_MAX:
            return
        ok = self._chain_voltage(a, b, v_max, LOG_FLOAT32_MAX / depth)
        ctx.report.notes.append(
            f"nonlinear: at max_input_voltage {v_max:g} V the I-V curve amplifies a layer's largest input up to "
            f"f(V_max)/V_max = {_exp_text(log_gain)} times the linear device's current, and with per-vector input "
            f"scaling (input_range 0) this compounds over the {depth} chained layers to "
            f"{_exp_text(depth * log_gain)}, "
            f"beyond float32's {np.finfo(np.float32).max:.3g}: outputs will likely be inf/NaN"
            + (f"; max_input_voltage <= {_down(ok)} V keeps the product within float32" if ok else "")
            + " (or set input_range)"
        )

    @staticmethod
    def _chain_voltage(a: float, b: float, v_max: float, log_gain_limit: float) -> float | None:
        """The largest V <= v_max whose gain ln(f(V)/V) is <= log_gain_limit (None if none)."""
        def log_gain(v):
            return log_f(a, b, v) - math.log(v)

        lo, hi = 0.0, v_max
        if math.log(a * b) > log_gain_limit:  # the gain at V -> 0
            return None
        for _ in range(200):  # f(V)/V grows with V: bisection
            mid = 0.5 * (lo + hi)
            if mid <= 0 or mid == lo or mid == hi:
                break
            if log_gain(mid) <= log_gain_limit:
                lo = mid
            else:
                hi = mid
        return lo if lo > 0 else None

    def attributes(self, ctx, rec) -> dict:
        a, b = self._iv
        return {"iv_a": float(a), "iv_b": float(b)}

    def summary(self, ctx) -> dict:
        return {"iv_a": float(self._iv[0]), "iv_b": float(self._iv[1])}


def _exp_text(log_value: float) -> str:
    """e^log_value as text, also beyond float64's range."""
    if log_value < 700:
        return f"{math.exp(log_value):.3g}"
    exponent = log_value / math.log(10)
    return f"{10 ** (exponent - math.floor(exponent)):.3g}e+{int(math.floor(exponent))}"


def _down(v: float) -> str:
    """`v` rounded down to 3 significant digits, so that the value shown still fits."""
    scale = 10 ** (math.floor(math.log10(v)) - 2)
    return f"{math.floor(v / scale) * scale:.3g}"
