"""`FuseActivation`: a `Relu` after a MemristiveMatMul becomes the node's `activation` attribute.

Crossbar tiles apply the layer's activation in their digital periphery, after the bias
(docs/op-spec.md, step 9); simulating it inside the node also saves onnxruntime a separate pass
over the layer's output (and the op library's NCHWc convolutions apply it in registers).

A `Relu` (default domain) is fused when it is the only reader of a MemristiveMatMul's output and
that output is not a graph output; the node then writes the `Relu`'s output and gets
`activation = "RELU"`. Remove the pass (`Pipeline.remove("fuse_activation")`) to keep the `Relu`
nodes.
"""

from __future__ import annotations

from .base import OP_DOMAIN, OP_TYPE, CompileContext, Pass
from .map_weights import set_attribute


class FuseActivation(Pass):
    name = "fuse_activation"

    def run(self, ctx: CompileContext) -> None:
        g = ctx.graph
        ours = {rec.node for rec in ctx.layers}
        outputs = ctx.graph_output_names()
        consumers = ctx.consumers()
        fused = set()
        for node in g.node:
            if node.op_type != OP_TYPE or node.domain != OP_DOMAIN or node.name not in ours:
                continue
            if any(a.name == "activation" for a in node.attribute):
                continue
            y = node.output[0]
            readers = consumers.get(y, [])
            if y in outputs or len(readers) != 1:
                continue
            relu = readers[0]
            if relu.op_type != "Relu" or relu.domain not in ("", "ai.onnx") or len(relu.output) != 1:
                continue
            node.output[0] = relu.output[0]
            set_attribute(node, "activation", "RELU")
            fused.add(id(relu))
        if not fused:
            return
        keep = [n for n in g.node if id(n) not in fused]
        del g.node[:]
        g.node.extend(keep)
        ctx._names = None  # names changed; rebuild on next use
