"""`FusePool`: a `MaxPool` after a conv-mode MemristiveMatMul becomes the node's `max_pool` attribute.

A tile's digital periphery can pool the layer's outputs before they leave it (docs/op-spec.md,
step 10); simulating that inside the node also spares onnxruntime a separate pass over the
unpooled output. The op pools over non-overlapping windows without padding, so only a `MaxPool`
that computes exactly that is fused:

- it reads the output of a conv-mode MemristiveMatMul this compilation mapped (`ctx.layers`),
  that has no `max_pool` yet, is its only reader, and that output is not a graph output;
- only its first output is used (no `Indices`);
- `kernel_shape` has one value per spatial axis of the layer's kernel and equals `strides` (absent
  strides mean 1, so a window of all ones);
- no padding (`pads` absent or all 0, `auto_pad` absent, NOTSET or VALID), `dilations` absent or
  all 1, `ceil_mode` absent or 0 (positions past the last whole window are dropped).

The node then writes the `MaxPool`'s output and gets `max_pool = kernel_shape`. Running after
`FuseActivation` lets Conv → Relu → MaxPool become one node (the op pools after its activation).
Remove the pass (`Pipeline.remove("fuse_pool")`) to keep the `MaxPool` nodes.
"""

from __future__ import annotations

import onnx

from .base import CompileContext, Pass, attr
from .fuse_readers import fuse_sole_readers
from .map_weights import set_attribute


def pool_window(pool: onnx.NodeProto, spatial_axes: int) -> list[int] | None:
    """The window of a `MaxPool` the op's `max_pool` reproduces, or None if it computes otherwise."""
    if pool.op_type != "MaxPool" or pool.domain not in ("", "ai.onnx"):
        return None
    if any(pool.output[1:]):  # Indices wanted: the op has no such output
        return None
    kernel = attr(pool, "kernel_shape")
    if kernel is None or len(kernel) != spatial_axes:
        return None
    kernel = [int(k) for k in kernel]
    strides = attr(pool, "strides")
    strides = [1] * spatial_axes if strides is None else [int(s) for s in strides]
    if strides != kernel:
        return None
    if any(attr(pool, "pads", [])) or any(int(d) != 1 for d in attr(pool, "dilations", [])):
        return None
    if (attr(pool, "auto_pad", "NOTSET") or "NOTSET") not in ("NOTSET", "VALID"):
        return None
    if int(attr(pool, "ceil_mode", 0)) != 0:
        return None
    return kernel


class FusePool(Pass):
    name = "fuse_pool"

    def run(self, ctx: CompileContext) -> None:
        def fuse(node: onnx.NodeProto, reader: onnx.NodeProto) -> bool:
            kernel = attr(node, "kernel_shape")
            if kernel is None or attr(node, "max_pool") is not None:
                return False
            window = pool_window(reader, len(kernel))
            if window is None:
                return False
            set_attribute(node, "max_pool", window)
            return True

        fuse_sole_readers(ctx, fuse)
