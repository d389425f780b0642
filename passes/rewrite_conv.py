"""`RewriteConv`: Conv 1-D/2-D/3-D with a constant weight → MemristiveMatMul in conv mode.

The ONNX weight `[N, C/group, k1..kn]` becomes the crossbar matrix `[K, N]` with
`K = C/group · prod(k)`, row `k = c · prod(k) + flat(offset)` (the op's im2col order), i.e.
`W.reshape(N, K).T`. `strides`, `pads`, `dilations`, `group` and `auto_pad` are copied (pads are
dropped when auto_pad is not NOTSET, as the op requires); `kernel_shape` is always written (from
the weight's shape). The optional bias `B` (constant or computed) becomes the op's `Bias`.
Groups, depthwise (group = C) included.
"""

from __future__ import annotations

from .base import RewritePass, attr


class RewriteConv(RewritePass):
    name = "rewrite_conv"
    op_types = ("Conv",)

    def rewrite(self, ctx, node, label, inits):
        x_name, w_name = node.input[0], node.input[1]
        b_name = node.input[2] if len(node.input) > 2 else ""
        if x_name in inits:
            return "the input X is a constant"
        W, why = self.float32_weight(ctx, w_name, inits)
        if W is None:
            return why
        if W.ndim not in (3, 4, 5):
            return f"{W.ndim - 2}-D convolution; only 1-D, 2-D and 3-D are mapped"
        why = self.activation_problem(ctx, x_name) or (b_name and self.activation_problem(ctx, b_name))
        if why:
            return why
        n = W.ndim - 2
        ks = list(W.shape[2:])
        declared = attr(node, "kernel_shape")
        if declared is not None and list(declared) != ks:
            return f"kernel_shape {list(declared)} disagrees with the weight's shape {ks}"
        if min(ks) < 1 or W.shape[0] < 1 or W.shape[1] < 1:
            return "the weight is empty"
        group = int(attr(node, "group", 1))
        N = W.shape[0]
        if group < 1 or N % group:
            return f"group {group} does not divide the {N} output channels"
        auto_pad = attr(node, "auto_pad", "NOTSET") or "NOTSET"
        if auto_pad not in ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"):
            return f"unknown auto_pad {auto_pad!r}"
        strides = attr(node, "strides")
        dilations = attr(node, "dilations")
        pads = attr(node, "pads") if auto_pad == "NOTSET" else None
        for nm, v, count in (("strides", strides, n), ("dilations", dilations, n), ("pads", pads, 2 * n)):
            if v is not None and len(v) != count:
                return f"{nm} has {len(v)} values, expected {count}"
        if pads is not None and min(pads) < 0:
            return "negative pads (cropping) are not supported"
        if b_name and b_name in inits:
            B, why = self.float32_weight(ctx, b_name, inits, "bias")
            if B is None:
                return why
            if B.shape != (N,):
                return f"bias shape {list(B.shape)} is not [{N}]"
        Wm = W.reshape(N, -1).T  # [K, N]
        return [
            self.emit_layer(
                ctx, node=node, label=label, kind="conv", x=x_name, W=Wm, bias=b_name,
                output=node.output[0],
                op_attrs=dict(
                    kernel_shape=ks,
                    strides=list(strides) if strides is not None else None,
                    pads=list(pads) if pads is not None else None,
                    dilations=list(dilations) if dilations is not None else None,
                    group=group if group != 1 else None,
                    auto_pad=auto_pad if auto_pad != "NOTSET" else None,
                ),
            )
        ]
