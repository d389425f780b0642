"""`Cleanup` and `Check`: the last passes of the default pipeline.

`Cleanup` removes initializers nothing reads any more (and the graph inputs that only declared
them), drops `value_info` entries of values that no longer exist, and puts `ctx.layers` in graph
order. `Check` runs `onnx.checker.check_model` on the result (models under 2 GiB).
"""

from __future__ import annotations

import onnx

from .base import CompileContext, Pass, _implicit_inputs


class Cleanup(Pass):
    name = "cleanup"

    def run(self, ctx: CompileContext) -> None:
        g = ctx.graph
        used = set(ctx.graph_output_names())
        produced = set()
        for n in g.node:
            used.update(n.input)
            used.update(_implicit_inputs(n))
            produced.update(n.output)
        init_names = {t.name for t in g.initializer}
        dead = init_names - used - ctx.initially_unused
        if dead:
            keep = [t for t in g.initializer if t.name not in dead]
            del g.initializer[:]
            g.initializer.extend(keep)
            inputs = [i for i in g.input if i.name not in dead]
            if len(inputs) != len(g.input):
                del g.input[:]
                g.input.extend(inputs)
        alive = produced | {i.name for i in g.input} | {t.name for t in g.initializer}
        vi = [v for v in g.value_info if v.name in alive]
        if len(vi) != len(g.value_info):
            del g.value_info[:]
            g.value_info.extend(vi)
        order = {n.name: i for i, n in enumerate(g.node)}
        ctx.layers.sort(key=lambda rec: order.get(rec.node, len(order)))
        ctx._names = None  # names changed; rebuild on next use


class Check(Pass):
    """Run the ONNX checker on the compiled model; a failure is a bug unless the input fails too."""

    name = "check"

    def __init__(self, source: onnx.ModelProto | None = None):
        self.source = source

    def run(self, ctx: CompileContext) -> None:
        if ctx.model.ByteSize() >= 2**31:
            ctx.report.notes.append("model over 2 GiB: onnx.checker skipped")
            return
        try:
            onnx.checker.check_model(ctx.model)
        except onnx.checker.ValidationError as exc:
            source = self.source if self.source is not None else getattr(ctx, "source", None)
            if source is not None:
                try:
                    onnx.checker.check_model(source)
                except onnx.checker.ValidationError:
                    ctx.report.notes.append(
                        "the input model already fails onnx.checker; so does the output"
                    )
                    return
            raise RuntimeError(f"memcc produced an invalid model (a bug): {exc}") from exc
