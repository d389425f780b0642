"""`Drift`: conductance retention loss with the time since programming, computed by the op.

G' = G·(t/t0)^(−ν) for t > t0 (docs/op-spec.md, "Drift (retention)"), with a per-device
exponent ν = max(0, nu + nu_std·z), z from the layer's drift stream. Sets ``drift_nu``,
``drift_nu_std``, ``drift_t0``, ``drift_seed`` on every layer and wires the op's optional
time input ``T`` to one new model input, `TIME_INPUT` (``memcc_time_s``, float32 scalar,
seconds since programming). The input has a default (an overridable initializer, the pass's
``t``, default t0: the model as programmed), so the model runs without it; feeding it
evaluates the same compiled model, in the same session, at any time:

    sess.run(None, {"x": x, "memcc_time_s": np.float32(3600)})

The op recomputes its drifted matrices when the time changes.
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from ..base import OP_TYPE
from .base import fail, number_arg
from .runtime_base import RuntimeNonideality, stream_key

#: the model input that carries the time since programming (seconds)
TIME_INPUT = "memcc_time_s"


class Drift(RuntimeNonideality):
    """Power-law conductance drift; time is a model input."""

    name = "drift"
    PARAMETERS = ("nu", "nu_std", "t0", "t", "seed")
    ALIASES = {"drift_nu": "nu", "drift_nu_std": "nu_std", "time": "t"}
    REPEAT_HINT = ("a run-time non-ideality sets one attribute per layer (drift_nu, ...), so only the last "
                   "would apply; give one drift with the combined value (with one t0, the exponents add)")

    def __init__(self, nu: float = 0.05, nu_std: float = 0.0, t0: float = 1.0, t: float | None = None,
                 seed: int | None = None):
        nd = self.name
        self.nu = number_arg(nd, "nu", nu, low=0)
        self.nu_std = number_arg(nd, "nu_std", nu_std, low=0)
        self.t0 = number_arg(nd, "t0", t0, low=0, low_open=True)
        self.t = number_arg(nd, "t", t, low=0, allow_none=True)
        self.seed = number_arg(nd, "seed", seed, low=0, integer=True, allow_none=True)

    def settings(self) -> dict:
        out = {"nu": self.nu, "nu_std": self.nu_std, "t0": self.t0}
        if self.t is not None:
            out["t"] = self.t
        if self.seed is not None:
            out["seed"] = self.seed
        return out

    def prepare(self, ctx) -> None:
        g = ctx.graph
        if any(i.name == TIME_INPUT for i in g.input) or any(t.name == TIME_INPUT for t in g.initializer):
            fail(self.name, f"the model already has a value named {TIME_INPUT!r} (compiled with drift already?)")
        default = np.asarray(self.t0 if self.t is None else self.t, dtype=np.float32)
        g.input.append(helper.make_tensor_value_info(TIME_INPUT, TensorProto.FLOAT, []))
        g.initializer.append(numpy_helper.from_array(default, TIME_INPUT))
        if ctx.model.ir_version < 4:
            ctx.model.ir_version = 4  # an initializer that is also an input: an overridable default

    def attributes(self, ctx, rec) -> dict:
        node = next(n for n in ctx.graph.node if n.name == rec.node and n.op_type == OP_TYPE)
        while len(node.input) < 3:
            node.input.append("")  # no bias: an empty name keeps T at its position
        if len(node.input) == 3:
            node.input.append(TIME_INPUT)
        else:
            node.input[3] = TIME_INPUT
        seed = ctx.options.seed if self.seed is None else self.seed
        return {"drift_nu": float(self.nu), "drift_nu_std": float(self.nu_std), "drift_t0": float(self.t0),
                "drift_seed": stream_key(seed, rec.node, "drift")}
