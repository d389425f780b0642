"""`FoldBatchNorm`: fold an inference-mode BatchNormalization into the Conv or Gemm before it.

With `f = scale / sqrt(var + epsilon)` and `shift = B − mean · f`, `BN(conv(x, W) + b)` equals
`conv(x, W · f) + (b · f + shift)` (f along the output channels); likewise for Gemm along its N
output columns (C becomes `f · beta · C + shift`, beta 1). The fold happens only when

- the BN's input is produced by a Conv/Gemm with constant float32 weights (and constant bias/C),
  and that output is read by the BN alone (and is not a graph output);
- scale, B, mean and var are constants, only the BN's first output is used, and the BN is in
  inference mode (`training_mode` 0, opset ≥ 14) and spatial (`spatial` 1, opset < 9).

Otherwise the BN stays as it is (it is digital either way; a note says why it was not folded).
Opset variants: `epsilon` defaults to 1e-5 in all versions; `consumed_inputs`/`is_test`/
`momentum` are irrelevant for inference.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from .base import CompileContext, Pass, attr, replace_nodes


class FoldBatchNorm(Pass):
    name = "fold_batchnorm"

    def run(self, ctx: CompileContext) -> None:
        g = ctx.graph
        inits = ctx.initializers()
        producers = ctx.producers()
        consumers = ctx.consumers()
        outputs = ctx.graph_output_names()
        replaced: dict[int, onnx.NodeProto] = {}  # id(producer) -> folded node
        removed: set[int] = set()
        for bn in g.node:
            if bn.op_type != "BatchNormalization" or bn.domain not in ("", "ai.onnx"):
                continue
            prod = producers.get(bn.input[0])
            if prod is None or prod.op_type not in ("Conv", "Gemm") or prod.domain not in ("", "ai.onnx"):
                continue
            if id(prod) in replaced:
                continue
            why = self._why_not(ctx, bn, prod, consumers, outputs, inits)
            if why:
                ctx.report.notes.append(
                    f"BatchNormalization {bn.name or bn.output[0]!r} not folded into "
                    f"{prod.op_type} {prod.name or prod.output[0]!r}: {why}"
                )
                continue
            scale, bias, mean, var = (ctx.constant(n, inits).astype(np.float64) for n in bn.input[1:5])
            eps = float(attr(bn, "epsilon", 1e-5))
            f = scale / np.sqrt(var + eps)
            shift = bias - mean * f
            fold = self._fold_conv if prod.op_type == "Conv" else self._fold_gemm
            new = fold(ctx, prod, bn, f, shift, inits)
            if isinstance(new, str):
                ctx.report.notes.append(
                    f"BatchNormalization {bn.name or bn.output[0]!r} not folded: {new}"
                )
                continue
            replaced[id(prod)] = new
            removed.add(id(bn))
        if replaced:
            replace_nodes(
                g, [replaced.get(id(n), n) for n in g.node if id(n) not in removed]
            )

    @staticmethod
    def _why_not(ctx, bn, prod, consumers, outputs, inits) -> str:
        x = bn.input[0]
        if len(consumers.get(x, [])) != 1 or x in outputs:
            return "the layer's output has other readers"
        if len(bn.input) < 5 or any(ctx.constant(n, inits) is None for n in bn.input[1:5]):
            return "its scale/B/mean/var are not constants"
        for extra in bn.output[1:]:
            if extra and (consumers.get(extra) or extra in outputs):
                return "its running statistics outputs are used"
        if attr(bn, "training_mode", 0):
            return "training_mode is set"
        if attr(bn, "spatial", 1) != 1:
            return "spatial=0 (per-activation statistics)"
        return ""

    @staticmethod
    def _fold_conv(ctx, conv, bn, f, shift, inits):
        W = ctx.constant(conv.input[1], inits)
        if W is None or W.dtype != np.float32:
            return "the Conv weight is not a float32 constant"
        if W.shape[0] != f.shape[0]:
            return "channel count mismatch"
        b = np.zeros(W.shape[0])
        if len(conv.input) > 2 and conv.input[2]:
            bc = ctx.constant(conv.input[2], inits)
            if bc is None:
                return "the Conv bias is not a constant"
            b = bc.astype(np.float64)
        Wf = (W.astype(np.float64) * f.reshape((-1,) + (1,) * (W.ndim - 1))).astype(np.float32)
        bf = (b * f + shift).astype(np.float32)
        label = conv.name or conv.output[0]
        wname = ctx.add_initializer(Wf, f"{label}.weight_bn")
        bname = ctx.add_initializer(bf, f"{label}.bias_bn")
        new = onnx.NodeProto()
        new.CopyFrom(conv)
        del new.input[:]
        new.input.extend([conv.input[0], wname, bname])
        new.output[0] = bn.output[0]
        return new

    @staticmethod
    def _fold_gemm(ctx, gemm, bn, f, shift, inits):
        B = ctx.constant(gemm.input[1], inits)
        if B is None or B.dtype != np.float32 or B.ndim != 2:
            return "the Gemm weight is not a 2-D float32 constant"
        trans_b = attr(gemm, "transB", 0)
        n = B.shape[0] if trans_b else B.shape[1]
        if n != f.shape[0]:
            return "channel count mismatch"
        beta = float(attr(gemm, "beta", 1.0))
        C = None
        if len(gemm.input) > 2 and gemm.input[2]:
            C = ctx.constant(gemm.input[2], inits)
            if C is None:
                return "the Gemm's C is not a constant"
        Bf = B.astype(np.float64) * (f[:, None] if trans_b else f[None, :])
        Cf = shift if C is None else f * (beta * C.astype(np.float64)) + shift
        label = gemm.name or gemm.output[0]
        bname = ctx.add_initializer(Bf.astype(np.float32), f"{label}.weight_bn")
        cname = ctx.add_initializer(np.asarray(Cf, dtype=np.float32), f"{label}.bias_bn")
        new = onnx.NodeProto()
        new.CopyFrom(gemm)
        del new.input[:]
        new.input.extend([gemm.input[0], bname, cname])
        new.output[0] = bn.output[0]
        for a in new.attribute:
            if a.name == "beta":
                a.CopyFrom(helper.make_attribute("beta", 1.0))
        return new
