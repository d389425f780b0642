"""`CrossbarAttributes`: write the crossbar/periphery settings onto every layer's node.

Sets `tile_shape`, `max_input_voltage`, `input_range`, `dac_bits`, `adc_bits`,
`adc_overflow_rate` and `quantization` ("linear") from `ctx.options` on each MemristiveMatMul in
`ctx.layers` (all written explicitly, defaults included, so a compiled model documents itself),
and fills in each layer's tile count: `ceil(K / rows) · ceil((N / group) / cols) · group`.
"""

from __future__ import annotations

import math

from .base import OP_TYPE, CompileContext, Pass
from .map_weights import set_attribute


class CrossbarAttributes(Pass):
    name = "crossbar_attributes"

    def run(self, ctx: CompileContext) -> None:
        o = ctx.options
        nodes = {n.name: n for n in ctx.graph.node if n.op_type == OP_TYPE}
        rows, cols = o.tile
        for rec in ctx.layers:
            node = nodes.get(rec.node)
            if node is None:
                continue
            set_attribute(node, "tile_shape", [rows, cols])
            set_attribute(node, "max_input_voltage", float(o.max_input_voltage))
            set_attribute(node, "input_range", float(o.input_range))
            set_attribute(node, "dac_bits", int(o.dac_bits))
            set_attribute(node, "adc_bits", int(o.adc_bits))
            set_attribute(node, "adc_overflow_rate", float(o.adc_overflow_rate))
            set_attribute(node, "quantization", "linear")
            n_per_group = rec.N // rec.group
            rec.tile_shape = (rows, cols)
            rec.tiles = (
                math.ceil(rec.K / (rows or rec.K or 1))
                * math.ceil(n_per_group / (cols or n_per_group or 1))
                * rec.group
            )
