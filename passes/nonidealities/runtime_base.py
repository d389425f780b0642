"""`RuntimeNonideality`: the base of the non-idealities the op computes at run time.

Unlike the compile-time passes (which rewrite the programmed conductances), these only write
attributes (docs/op-spec.md: ``read_noise_std``/``noise_seed``, ``iv_a``/``iv_b``,
``drift_*``) onto every mapped MemristiveMatMul node; the kernel (and `memcc.reference`) then
draws the noise at every read, applies the I-V curve to the applied voltages, or decays the
conductances with the time input ``T``. They run at the same place in the pipeline (after
``program_devices``), so they take the same specs (``--nonideality read_noise:std=0.05``).

Seeds: a stream key (an int64 attribute) per layer, derived deterministically from the compile
seed (or the pass's own ``seed`` when given) and the layer's node name, so layers draw
independent streams and the same compile gives the same model.

Each may appear once per compilation (`REPEATABLE` False): a second one would overwrite the
first one's attributes on every layer, so only the last would apply.
"""

from __future__ import annotations

import zlib

import numpy as np

from ..base import OP_TYPE, CompileContext
from ..map_weights import set_attribute
from ..program_devices import layer_seed
from .base import NonidealityPass


def stream_key(seed: int, node: str, stream: str) -> int:
    """A key in [0, 2^63) for one layer's `stream` ("read_noise", "drift"), from `seed` and the node."""
    ss = np.random.SeedSequence(layer_seed(seed, node), spawn_key=(zlib.crc32(stream.encode("utf-8")),))
    hi, lo = (int(w) for w in ss.generate_state(2, np.uint32))
    return ((hi & 0x7FFFFFFF) << 32) | lo


class RuntimeNonideality(NonidealityPass):
    """Base: subclasses implement `attributes(ctx, rec) -> dict` (the node attributes to set)
    and may override `prepare(ctx)` (checks, graph changes) and `summary(ctx)`."""

    REPEATABLE = False
    REPEAT_HINT = ("a run-time non-ideality sets one attribute per layer, so only the last would apply; "
                   "give one with the combined value")

    def prepare(self, ctx: CompileContext) -> None:
        pass

    def check(self, ctx: CompileContext) -> None:
        """`prepare` on the empty model `memcc.compiler.check_settings` gives: its checks against
        the device and the options fail before anything is mapped. A `prepare` that needs the
        mapped layers or the real graph should override this with the checks it can make without."""
        self.prepare(ctx)

    def attributes(self, ctx: CompileContext, rec) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def summary(self, ctx: CompileContext) -> dict:
        return {}

    def run(self, ctx: CompileContext) -> None:
        todo = [rec for rec in ctx.layers if rec.mapped]
        if not todo:
            return
        self.occurrence(ctx)  # refuses a repeat in a hand-built pipeline (lists are checked earlier)
        self.prepare(ctx)
        nodes = {n.name: n for n in ctx.graph.node if n.op_type == OP_TYPE}
        for rec in todo:
            attrs = self.attributes(ctx, rec)
            for name, value in attrs.items():
                set_attribute(nodes[rec.node], name, value)
            rec.nonidealities.append({"name": self.name, "runtime": True, **attrs})
        ctx.report.nonidealities.append(
            {"name": self.name, "settings": self.settings(), "total": {"n_layers": len(todo), **self.summary(ctx)}}
        )
