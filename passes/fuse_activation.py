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

import onnx

from .base import CompileContext, Pass
from .fuse_readers import fuse_sole_readers
from .map_weights import set_attribute


class FuseActivation(Pass):
    name = "fuse_activation"

    def run(self, ctx: CompileContext) -> None:
        def fuse(node: onnx.NodeProto, relu: onnx.NodeProto) -> bool:
            if any(a.name == "activation" for a in node.attribute):
                return False
            if relu.op_type != "Relu" or relu.domain not in ("", "ai.onnx") or len(relu.output) != 1:
                return False
            set_attribute(node, "activation", "RELU")
            return True

        fuse_sole_readers(ctx, fuse)
