"""`RewriteGemm`: Gemm with a constant weight B → MemristiveMatMul (matmul mode).

`Y = alpha · A' · B' + beta · C` with `A' = transA ? Aᵀ : A`, `B' = transB ? Bᵀ : B`:

- the crossbar holds `W = alpha · B'` ([K, N]);
- `transA`: a `Transpose` node is inserted before the op;
- C that broadcasts as `[N]` (scalar, `[1]`, `[N]`, `[1, N]`) and is constant becomes the op's
  bias `beta · C`; any other C (`[M, N]`, `[M, 1]`, or computed at run time) is added by an `Add`
  node after the op (`beta · C` folded into a new constant, or a `Mul` when C is not constant).
  `beta = 0` drops C.

Skipped (reported): B not a constant (or not float32, or not 2-D), A a constant while B is not.
"""

from __future__ import annotations

import numpy as np
from onnx import helper

from .base import RewritePass, attr
from .normalize import unfolded_weight_reason


class RewriteGemm(RewritePass):
    name = "rewrite_gemm"
    op_types = ("Gemm",)

    def rewrite(self, ctx, node, label, inits):
        a_name, b_name = node.input[0], node.input[1]
        c_name = node.input[2] if len(node.input) > 2 else ""
        if b_name not in inits:
            if a_name in inits:
                return "the constant is the first input (A); only a constant B is mapped"
            return unfolded_weight_reason(ctx, b_name) or "both inputs are activations (B is not a constant)"
        if a_name in inits:
            return "both inputs are constants (nothing to compute at run time)"
        B, why = self.float32_weight(ctx, b_name, inits, "weight B")
        if B is None:
            return why
        if B.ndim != 2:
            return f"weight B has rank {B.ndim}, Gemm needs 2"
        why = self.activation_problem(ctx, a_name)
        if why:
            return why
        alpha = float(attr(node, "alpha", 1.0))
        beta = float(attr(node, "beta", 1.0))
        trans_a = int(attr(node, "transA", 0))
        trans_b = int(attr(node, "transB", 0))
        W = (B.T if trans_b else B).astype(np.float64) * alpha
        K, N = W.shape

        bias_name, needs_add, C = "", False, None
        if c_name and beta != 0.0:
            C = ctx.constant(c_name, inits)
            if C is not None and C.dtype != np.float32:
                return f"C {c_name!r} is {C.dtype}; only float32 layers are mapped"
            if C is not None and C.ndim <= 2 and _broadcasts_as_row(C.shape, N):
                bias = beta * np.broadcast_to(C.astype(np.float64), (1, N)).reshape(N)
                bias_name = ctx.add_initializer(bias.astype(np.float32), f"{label}.bias")
            else:
                if ctx.opset() < 7:
                    return ("C is not a constant [N] vector and the model's opset (< 7) "
                            "has no broadcasting Add")
                needs_add = True
        out_nodes = []
        x = a_name
        if trans_a:
            x = ctx.unique_name(f"{label}.A_T")
            out_nodes.append(helper.make_node(
                "Transpose", [a_name], [x], name=ctx.unique_name(f"{label}.transpose_A"), perm=[1, 0]))
        y = node.output[0]
        op_out = ctx.unique_name(f"{label}.matmul") if needs_add else y
        out_nodes.append(
            self.emit_layer(ctx, node=node, label=label, kind="gemm", x=x,
                            W=W.astype(np.float32), bias=bias_name, output=op_out)
        )
        if needs_add:
            if C is not None:  # a constant C that does not broadcast as [N]
                c_in = c_name if beta == 1.0 else ctx.add_initializer(
                    (beta * C.astype(np.float64)).astype(np.float32), f"{label}.C")
            else:  # C computed at run time
                c_in = c_name
                if beta != 1.0:
                    beta_name = ctx.add_initializer(np.array(beta, dtype=np.float32), f"{label}.beta")
                    c_in = ctx.unique_name(f"{label}.beta_C")
                    out_nodes.append(helper.make_node(
                        "Mul", [c_name, beta_name], [c_in], name=ctx.unique_name(f"{label}.scale_C")))
            out_nodes.append(helper.make_node(
                "Add", [op_out, c_in], [y], name=ctx.unique_name(f"{label}.add_C")))
        return out_nodes


def _broadcasts_as_row(shape, n: int) -> bool:
    """True for C shapes equal to a [N] vector under broadcasting: (), (1,), (N,), (1, 1), (1, N)."""
    if len(shape) == 2 and shape[0] != 1:
        return False
    return len(shape) == 0 or shape[-1] in (1, n)
