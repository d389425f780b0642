"""`RewriteMatMul`: MatMul of activations `[..., K]` and a constant 2-D weight `[K, N]`.

The activations may have any rank ≥ 1 (numpy `matmul` semantics equal the op's matmul mode for a
2-D second operand). Skipped, with the reason in the report:

- both inputs are activations (e.g. attention's Q·Kᵀ and P·V): "both inputs are activations
  (attention)";
- the constant is the first input, both inputs are constants, the weight is 1-D (matrix-vector
  product) or has rank > 2 (a batched weight), or is not float32.
"""

from __future__ import annotations

from .base import RewritePass
from .normalize import unfolded_weight_reason


class RewriteMatMul(RewritePass):
    name = "rewrite_matmul"
    op_types = ("MatMul",)

    def rewrite(self, ctx, node, label, inits):
        a_name, b_name = node.input[0], node.input[1]
        a_const, b_const = a_name in inits, b_name in inits
        if not a_const and not b_const:
            return unfolded_weight_reason(ctx, b_name) or "both inputs are activations (attention)"
        if a_const and b_const:
            return "both inputs are constants (nothing to compute at run time)"
        if a_const:
            return "the constant is the first input; only activations @ constant weight are mapped"
        W, why = self.float32_weight(ctx, b_name, inits)
        if W is None:
            return why
        if W.ndim == 1:
            return "the weight is 1-D (a matrix-vector product with a vector output)"
        if W.ndim != 2:
            return f"the weight has rank {W.ndim} (a batched weight); only 2-D weights are mapped"
        why = self.activation_problem(ctx, a_name)
        if why:
            return why
        shape = ctx.shape(a_name)
        if shape is not None and len(shape) == 0:
            return "the activation is a scalar"
        return [
            self.emit_layer(ctx, node=node, label=label, kind="matmul", x=a_name, W=W,
                            bias="", output=node.output[0])
        ]
