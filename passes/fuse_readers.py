"""Folding the node that alone reads a layer's output into the layer (the fuse_* passes).

A mapped MemristiveMatMul can take over what its tile's digital periphery would do next (the
activation, max pooling). `fuse_sole_readers` finds each candidate — the only reader of a layer
this compilation mapped, whose output is not a graph output — and asks the pass whether it fuses;
a fused reader is removed and the layer writes its output.
"""

from __future__ import annotations

from typing import Callable

import onnx

from .base import OP_DOMAIN, OP_TYPE, CompileContext


def fuse_sole_readers(ctx: CompileContext, fuse: Callable[[onnx.NodeProto, onnx.NodeProto], bool]) -> None:
    """`fuse(layer, reader)` sets the layer's attribute and returns True when it takes the reader over."""
    g = ctx.graph
    ours = {rec.node for rec in ctx.layers}
    outputs = ctx.graph_output_names()
    consumers = ctx.consumers()
    fused = set()
    for node in g.node:
        if node.op_type != OP_TYPE or node.domain != OP_DOMAIN or node.name not in ours:
            continue
        y = node.output[0]
        readers = consumers.get(y, [])
        if y in outputs or len(readers) != 1 or list(readers[0].input) != [y]:
            continue
        reader = readers[0]
        if not fuse(node, reader):
            continue
        node.output[0] = reader.output[0]
        fused.add(id(reader))
    if not fused:
        return
    keep = [n for n in g.node if id(n) not in fused]
    del g.node[:]
    g.node.extend(keep)
    ctx._names = None  # names changed; rebuild on next use
