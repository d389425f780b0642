"""`Normalize`: make layer weights visible as initializers and collect type/shape information.

- `Constant` nodes read by a Gemm, MatMul, Conv or BatchNormalization become initializers (all
  forms: `value`, `value_float(s)`, `value_int(s)`); other Constants stay as they are.
- Constant sub-graphs that compute such a node's input (`Transpose(W)` of a PyTorch export
  without constant folding, `DequantizeLinear(int8 W, scale, zero_point)`, `Reshape`, `Cast`,
  `Mul(W, scale)`, a `Split` of a packed weight, ...) are evaluated once with onnx's
  ReferenceEvaluator at the model's opset and become initializers. A node is folded only when
  every input is an initializer (not one a graph input can override), a Constant or an already
  folded value, and it lies on a path of such nodes into a layer's input. Random ops, nodes with
  sub-graphs or of other domains are never folded; nodes producing graph outputs, results much
  larger than their inputs and ops the evaluator rejects are left as they are with a note.
  `unfolded_weight_reason` tells the rewrite passes when a weight is computed from constants but
  was not folded.
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

from .base import CompileContext, Pass, _implicit_inputs, replace_nodes

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
    """Constants → initializers, constant weight sub-graphs folded, Identity-of-initializer
    resolved, shape inference."""

    name = "normalize"

    def __init__(self, infer_shapes: bool = True):
        self.infer_shapes = infer_shapes

    def run(self, ctx: CompileContext) -> None:
        self._constants_to_initializers(ctx)
        self._fold_weight_subgraphs(ctx)
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

    def _fold_weight_subgraphs(self, ctx: CompileContext) -> None:
        g = ctx.graph
        sources = _ConstantSources(ctx)
        # Which values could be computed before the model runs (no evaluation yet).
        computable: set[str] = set()
        for node in g.node:
            if node.op_type == "Constant" or not _foldable_kind(node):
                continue
            if all(i in computable or sources.is_constant(i) for i in node.input if i):
                computable.update(o for o in node.output if o)
        if not computable:
            return
        # Only constant sub-graphs that end in a layer's input are folded: folding every constant
        # expression would materialise helpers nobody maps and cost memory for nothing.
        producers = ctx.producers()
        wanted: set[str] = set()
        stack = [n for n in self._layer_inputs(ctx) if n in computable]
        while stack:
            name = stack.pop()
            if name in wanted:
                continue
            wanted.add(name)
            stack.extend(i for i in producers[name].input if i in computable)
        if not wanted:
            return

        outputs = ctx.graph_output_names()
        folded_nodes: set[int] = set()
        new_values: dict[str, np.ndarray] = {}
        for index, node in enumerate(g.node):
            if not set(node.output) & wanted:
                continue
            if not all(sources.is_constant(i) for i in node.input if i):
                continue  # an input that could not be folded; that node has its note
            if node.op_type == "Identity":
                # `_resolve_identities` rewires the layer afterwards; the value is read only if a
                # folded node downstream needs it (PyTorch exports put Identities on big weights)
                sources.alias(node.output[0], node.input[0])
                continue
            why = "it produces a graph output" if set(node.output) & outputs else ""
            values = None
            if not why:
                try:
                    inputs = {i: sources.value(i) for i in node.input if i}
                except Exception as exc:  # noqa: BLE001 - e.g. external data that was not loaded
                    inputs, why = None, f"its inputs could not be read ({type(exc).__name__})"
                if inputs is not None:
                    values, why = _evaluate(ctx, node, inputs)
            if why:
                ctx.report.notes.append(
                    f"{node.op_type} {ctx.node_label(node, index)!r} computes a layer input from "
                    f"constants but was not folded: {why}"
                )
                continue
            for name, value in values.items():
                sources.add(name, value)
                new_values[name] = value
            folded_nodes.add(index)
        if not folded_nodes:
            return

        keep = [n for i, n in enumerate(g.node) if i not in folded_nodes]
        # Constant nodes that only fed folded nodes are dead now; nodes that were dead before are
        # not this pass's business.
        fed_folded = {i for idx in folded_nodes for i in g.node[idx].input}
        replace_nodes(g, keep)
        read = set(outputs)
        for n in g.node:
            read.update(n.input)
            read.update(_implicit_inputs(n))
        for name, value in new_values.items():
            if name not in read:  # an intermediate of a folded chain
                continue
            tensor = numpy_helper.from_array(np.ascontiguousarray(value), name)
            g.initializer.append(tensor)
            if ctx.model.ir_version < 4:
                g.input.append(helper.make_tensor_value_info(name, tensor.data_type, list(tensor.dims)))
        while True:
            consumers = ctx.consumers()
            dead = [
                n.op_type in ("Constant", "Identity")
                and all(o in fed_folded and o not in outputs and not consumers.get(o) for o in n.output)
                for n in g.node
            ]
            if not any(dead):
                break
            fed_folded.update(i for n, d in zip(g.node, dead) if d for i in n.input)
            replace_nodes(g, [n for n, d in zip(g.node, dead) if not d])

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


#: Constant attributes `constant_value` turns into arrays.
_CONSTANT_FORMS = ("value", "value_float", "value_floats", "value_int", "value_ints")

#: Ops whose result is not a function of their inputs; folding them would freeze one draw.
_NONDETERMINISTIC = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike",
                     "Multinomial", "Bernoulli"}

#: Ops whose older versions onnx's ReferenceEvaluator does not implement, with the version to
#: evaluate them at instead: it computes the same for every older model (DequantizeLinear 19
#: only added float8 inputs).
_EVALUATE_AT_LEAST = {"DequantizeLinear": 19}

#: A folded result may grow beyond its inputs' size only up to this many elements, so that an
#: Expand/Tile/ConstantOfShape does not turn a few bytes into a huge initializer.
_FOLD_GROWTH_LIMIT = 1 << 20


class _ConstantSources:
    """Values known before the model runs: initializers no graph input overrides, Constant nodes,
    results folded so far and Identity aliases of those. Arrays are read lazily (weights can be
    large)."""

    def __init__(self, ctx: CompileContext):
        g = ctx.graph
        self.tensors = _fixed_initializers(ctx)
        self.constants = {
            n.output[0]: n for n in g.node
            if n.op_type == "Constant" and n.domain in ("", "ai.onnx") and len(n.output) == 1
        }
        self.known: dict[str, np.ndarray] = {}
        self.aliases: dict[str, str] = {}

    def is_constant(self, name: str) -> bool:
        name = self.aliases.get(name, name)
        if name in self.known or name in self.tensors:
            return True
        node = self.constants.get(name)
        # the forms `constant_value` reads, checked without decoding a possibly large tensor
        return node is not None and any(
            a.name in _CONSTANT_FORMS and (a.name != "value" or a.type == onnx.AttributeProto.TENSOR)
            for a in node.attribute
        )

    def value(self, name: str) -> np.ndarray:
        name = self.aliases.get(name, name)
        if name not in self.known:
            if name in self.tensors:
                self.known[name] = numpy_helper.to_array(self.tensors[name])
            else:
                self.known[name] = constant_value(self.constants[name])
        return self.known[name]

    def add(self, name: str, value: np.ndarray) -> None:
        self.known[name] = value

    def alias(self, name: str, source: str) -> None:
        """`name` holds the value of constant `source` (an Identity)."""
        self.aliases[name] = self.aliases.get(source, source)


def _fixed_initializers(ctx: CompileContext) -> dict[str, onnx.TensorProto]:
    """The initializers no graph input overrides, by name."""
    g = ctx.graph
    # From IR 4 on, an initializer that is also a graph input is only a default the caller may
    # replace at run time; before IR 4 every initializer had to be declared an input.
    overridable = {i.name for i in g.input} if ctx.model.ir_version >= 4 else set()
    return {t.name: t for t in g.initializer if t.name not in overridable}


def _foldable_kind(node: onnx.NodeProto) -> bool:
    """Whether the node's outputs are a function of its inputs the ReferenceEvaluator can compute
    on its own (no other domains, whose ops it may not know or may compute differently; no
    sub-graphs, which read the enclosing scope)."""
    return (
        node.domain in ("", "ai.onnx")
        and node.op_type not in _NONDETERMINISTIC
        and any(node.input)
        and not any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute)
    )


def _evaluate(ctx: CompileContext, node: onnx.NodeProto,
              inputs: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray] | None, str]:
    """The node's outputs for constant inputs, or (None, why not)."""
    from onnx.reference import ReferenceEvaluator

    opsets = {imp.domain or "": imp.version for imp in ctx.model.opset_import}
    opsets[""] = max(ctx.opset("") or opsets.get("", 1), _EVALUATE_AT_LEAST.get(node.op_type, 0))
    try:
        in_infos = [
            helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(v.dtype), list(v.shape))
            for name, v in inputs.items()
        ]
        out_names = [o for o in node.output if o]
        graph = helper.make_graph([node], "fold", in_infos,
                                  [helper.make_empty_tensor_value_info(o) for o in out_names])
        # The graph form (not the bare node) so the op runs in the model's opset version:
        # Reshape, Squeeze, Unsqueeze, ... changed their signatures over time.
        results = ReferenceEvaluator(graph, opsets=opsets).run(None, inputs)
    except Exception as exc:  # noqa: BLE001 - anything the evaluator rejects is left unfolded
        return None, f"evaluation failed ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
    if len(results) != len(out_names):
        return None, f"the evaluator gave {len(results)} results for {len(out_names)} outputs"
    expected = _expected_elem_types(ctx, node, inputs)
    values = {}
    for name, value in zip(out_names, results):
        if not isinstance(value, np.ndarray) and not np.isscalar(value):
            return None, "its result is not a tensor"
        value = np.asarray(value)
        if value.dtype.kind in "OUSV":
            return None, f"its result has dtype {value.dtype}"
        want = expected.get(name)
        if want is not None and helper.np_dtype_to_tensor_dtype(value.dtype) != want:
            # The evaluator computes some ops in numpy's promoted type; the graph must keep
            # the type the op declares, or readers downstream would see a different input.
            value = value.astype(helper.tensor_dtype_to_np_dtype(want))
        values[name] = value
    limit = max(sum(v.size for v in inputs.values()), _FOLD_GROWTH_LIMIT)
    big = [n for n, v in values.items() if v.size > limit]
    if big:
        return None, f"its result has {values[big[0]].size:,} elements, far more than its inputs"
    return values, ""


def _expected_elem_types(ctx: CompileContext, node: onnx.NodeProto,
                         inputs: dict[str, np.ndarray]) -> dict[str, int]:
    try:
        schema = onnx.defs.get_schema(node.op_type, ctx.opset("") or 1, node.domain)
        types = {
            name: helper.make_tensor_type_proto(helper.np_dtype_to_tensor_dtype(v.dtype), list(v.shape))
            for name, v in inputs.items()
        }
        inferred = onnx.shape_inference.infer_node_outputs(
            schema, node, types, opset_imports=list(ctx.model.opset_import))
    except Exception:  # noqa: BLE001 - without a declared type the evaluator's type is kept
        return {}
    return {
        name: t.tensor_type.elem_type for name, t in inferred.items()
        if t.HasField("tensor_type") and t.tensor_type.elem_type
    }


def unfolded_weight_reason(ctx: CompileContext, name: str) -> str:
    """Why a layer input that is not an initializer is nonetheless no activation, or "".

    For a value computed from constants only (initializers, Constant nodes) that `Normalize`
    did not fold: "weight computed by <op> from constants; not folded". "" when the value
    depends on a graph input (a real activation, e.g. attention's Q·Kᵀ) or is an initializer.
    """
    # The rewrite passes ask this for every MatMul/Gemm they skip; on a transformer, walking up
    # from each of them would cost nodes x layers, so the whole graph is classified once.
    origins = ctx.graph_cache.get(__name__)
    if origins is None:
        origins = ctx.graph_cache[__name__] = _WeightOrigins(ctx)
    op_type = origins.producer.get(name)
    if op_type is None or name in origins.varying:
        return ""
    if op_type == "Constant":
        return "weight is a Constant in a form memcc does not read (sparse or non-numeric)"
    return f"weight computed by {op_type} from constants; not folded"


class _WeightOrigins:
    """For each value of the top-level graph, the op type producing it (`producer`) and whether
    it depends on something unknown before the model runs (`varying`): a graph input, an
    initializer a graph input overrides, a random op or another op that reads no input.

    Initializers added later with fresh names (the rewrites' G) change nothing here: no node of
    the graph this was computed from reads them.
    """

    def __init__(self, ctx: CompileContext):
        tensors = _fixed_initializers(ctx)
        nodes = list(ctx.graph.node)
        producer_index: dict[str, int] = {}
        for index, node in enumerate(nodes):
            for o in node.output:
                if o:
                    producer_index[o] = index
        self.producer = {o: nodes[i].op_type for o, i in producer_index.items()}
        self.varying: set[str] = set()
        readers: dict[str, list[int]] = {}
        stack: list[str] = []

        def mark_outputs(index: int) -> None:
            for o in nodes[index].output:
                # with several producers of one name (an invalid graph) the last one counts
                if o and producer_index[o] == index and o not in tensors and o not in self.varying:
                    self.varying.add(o)
                    stack.append(o)

        for index, node in enumerate(nodes):
            if node.op_type == "Constant":
                continue
            if node.op_type in _NONDETERMINISTIC or not any(node.input):
                mark_outputs(index)
            for name in set(node.input) | _implicit_inputs(node):
                if not name:
                    continue
                readers.setdefault(name, []).append(index)
                if name not in tensors and name not in producer_index and name not in self.varying:
                    self.varying.add(name)
                    stack.append(name)
        while stack:
            for index in readers.get(stack.pop(), ()):
                mark_outputs(index)


def _tensor_bytes(t: onnx.TensorProto) -> int:
    if t.HasField("raw_data"):
        return len(t.raw_data)
    n = 1
    for d in t.dims:
        n *= d
    return n * 8
