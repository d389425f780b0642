"""`Normalize`: make layer weights visible as initializers and collect type/shape information.

- `Constant` nodes read by a Gemm, MatMul, Conv or BatchNormalization become initializers (all
  forms: `value`, `value_float(s)`, `value_int(s)`); other Constants stay as they are.
- `Identity` of an initializer read by such a node: the node reads the initializer directly
  (the Identity is removed when nothing else reads it).
- Shape inference fills `ctx.value_info` (name → (elem_type, shape)); the model itself is not
  changed by it. Large initializers are replaced by typed graph inputs in a throw-away copy before
  inference, so models larger than protobuf's 2 GiB limit work too. If inference fails, passes go
  on without the information (a note is added to the report).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .base import CompileContext, Pass, replace_nodes

LAYER_OPS = ("Gemm", "MatMul", "Conv", "BatchNormalization")

#: Initializers larger than this (bytes) are left out of the copy given to shape inference.
_INFERENCE_INLINE_LIMIT = 1 << 16


def constant_value(node: onnx.NodeProto) -> np.ndarray | None:
    """The value of a Constant node, or None for forms that are not numeric tensors."""
    for a in node.attribute:
        if a.name == "value" and a.type == onnx.AttributeProto.TENSOR:
            return numpy_helper.to_array(a.t)
        if a.name == "value_float":
            return np.array(a.f, dtype=np.float32)
        if a.name == "value_floats":
            return np.array(list(a.floats), dtype=np.float32)
        if a.name == "value_int":
            return np.array(a.i, dtype=np.int64)
        if a.name == "value_ints":
            return np.array(list(a.ints), dtype=np.int64)
    return None


class Normalize(Pass):
    """Constants → initializers, Identity-of-initializer resolved, shape inference."""

    name = "normalize"

    def __init__(self, infer_shapes: bool = True):
        self.infer_shapes = infer_shapes

    def run(self, ctx: CompileContext) -> None:
        self._constants_to_initializers(ctx)
        self._resolve_identities(ctx)
        if self.infer_shapes:
            self._infer(ctx)

    # ------------------------------------------------------------------------------------------

    @staticmethod
    def _layer_inputs(ctx: CompileContext) -> set[str]:
        """Values read by a layer op, directly or through a chain of Identity nodes."""
        names: set[str] = set()
        for n in ctx.graph.node:
            if n.op_type in LAYER_OPS and n.domain in ("", "ai.onnx"):
                names.update(n.input)
        identities = [n for n in ctx.graph.node if n.op_type == "Identity" and n.domain in ("", "ai.onnx")]
        grew = True
        while grew:
            grew = False
            for n in identities:
                if n.output[0] in names and n.input[0] not in names:
                    names.add(n.input[0])
                    grew = True
        names.discard("")
        return names

    def _constants_to_initializers(self, ctx: CompileContext) -> None:
        g = ctx.graph
        feeds_layer = self._layer_inputs(ctx)
        outputs = ctx.graph_output_names()
        existing = {t.name for t in g.initializer}
        keep = []
        for node in g.node:
            if (
                node.op_type == "Constant"
                and node.domain in ("", "ai.onnx")
                and len(node.output) == 1
                and node.output[0] in feeds_layer
                and node.output[0] not in outputs
                and node.output[0] not in existing
            ):
                value = constant_value(node)
                if value is not None:
                    name = node.output[0]
                    tensor = numpy_helper.from_array(np.ascontiguousarray(value), name)
                    g.initializer.append(tensor)
                    if ctx.model.ir_version < 4:
                        g.input.append(
                            helper.make_tensor_value_info(name, tensor.data_type, list(tensor.dims))
                        )
                    continue
            keep.append(node)
        if len(keep) != len(g.node):
            replace_nodes(g, keep)

    def _resolve_identities(self, ctx: CompileContext) -> None:
        g = ctx.graph
        inits = {t.name for t in g.initializer}
        outputs = ctx.graph_output_names()
        alias = {}
        for node in g.node:  # nodes are in topological order, so chains resolve in one sweep
            if node.op_type == "Identity" and node.domain in ("", "ai.onnx"):
                src = alias.get(node.input[0], node.input[0])
                if src in inits:
                    alias[node.output[0]] = src
        if not alias:
            return
        changed = False
        for node in g.node:
            if node.op_type in LAYER_OPS and node.domain in ("", "ai.onnx"):
                for i, name in enumerate(node.input):
                    if name in alias:
                        node.input[i] = alias[name]
                        changed = True
        if not changed:
            return
        while True:  # drop the Identity nodes nothing reads any more (chains included)
            consumers = ctx.consumers()
            keep = [
                n
                for n in g.node
                if not (
                    n.op_type == "Identity"
                    and n.output[0] in alias
                    and n.output[0] not in outputs
                    and not consumers.get(n.output[0])
                )
            ]
            if len(keep) == len(g.node):
                break
            replace_nodes(g, keep)

    def _infer(self, ctx: CompileContext) -> None:
        m = ctx.model
        probe = onnx.ModelProto()
        probe.ir_version = max(m.ir_version, 4)
        probe.opset_import.extend(m.opset_import)
        probe.functions.extend(m.functions)
        pg = probe.graph
        pg.name = m.graph.name
        pg.node.extend(m.graph.node)
        pg.input.extend(m.graph.input)
        pg.output.extend(m.graph.output)
        pg.value_info.extend(m.graph.value_info)
        input_names = {i.name for i in m.graph.input}
        for t in m.graph.initializer:
            if _tensor_bytes(t) <= _INFERENCE_INLINE_LIMIT:
                pg.initializer.append(t)
            elif t.name not in input_names:
                pg.input.append(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
        try:
            inferred = onnx.shape_inference.infer_shapes(probe, strict_mode=False)
        except Exception as exc:  # noqa: BLE001 - inference is best effort
            ctx.report.notes.append(f"shape inference failed ({str(exc).splitlines()[0]}); "
                                    "continuing without inferred shapes")
            return
        info = {}
        for vi in list(inferred.graph.input) + list(inferred.graph.value_info) + list(inferred.graph.output):
            tt = vi.type.tensor_type
            if not vi.type.HasField("tensor_type"):
                continue
            shape = None
            if tt.HasField("shape"):
                shape = tuple(d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim)
            info[vi.name] = (tt.elem_type, shape)
        for t in m.graph.initializer:
            info[t.name] = (t.data_type, tuple(t.dims))
        ctx.value_info = info


def _tensor_bytes(t: onnx.TensorProto) -> int:
    if t.HasField("raw_data"):
        return len(t.raw_data)
    n = 1
    for d in t.dims:
        n *= d
    return n * 8
