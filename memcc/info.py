"""What a compiled model holds: per-layer crossbar usage and the nodes that stayed digital.

`describe(model)` reads every `ai.memcc::MemristiveMatMul` node's attributes and conductance
shape (docs/op-spec.md) and returns plain dicts; `format_table()` renders them for `memcc info`.

Counting conventions:
- crossbars per tile: 2 for the double-column scheme (positive and negative arrays, S = 2), 1 for
  the single-column scheme (S = 1);
- tiles = row tiles x column tiles (x groups for a grouped convolution), each tile being one
  crossbar (or pair) of at most `tile_shape` cells;
- devices = S x K x N memristors, plus, for the single-column scheme, one reference column per
  tile (K cells for each column tile and group).
"""

from __future__ import annotations

import math
from typing import Any, Iterator

import onnx
from onnx import helper

from memcc import OP_DOMAIN, OP_TYPE

#: Op types that memcc maps; when one of them is still in the compiled model, it runs digitally.
MAPPABLE_OPS = ("Gemm", "MatMul", "Conv")


def _iter_graphs(graph: onnx.GraphProto, consts: dict[str, list[int]]) -> Iterator[tuple[onnx.NodeProto, dict]]:
    scope = dict(consts)
    for init in graph.initializer:
        scope[init.name] = list(init.dims)
    for node in graph.node:
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            for attr in node.attribute:
                if attr.name == "value" and attr.HasField("t"):
                    scope[node.output[0]] = list(attr.t.dims)
    for vi in list(graph.value_info) + list(graph.input):
        if vi.name not in scope and vi.type.HasField("tensor_type"):
            dims = vi.type.tensor_type.shape.dim
            if dims and all(d.HasField("dim_value") for d in dims):
                scope[vi.name] = [d.dim_value for d in dims]
    for node in graph.node:
        yield node, scope
        for attr in node.attribute:
            if attr.HasField("g"):
                yield from _iter_graphs(attr.g, scope)
            for sub in attr.graphs:
                yield from _iter_graphs(sub, scope)


def _attrs(node: onnx.NodeProto) -> dict[str, Any]:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _decode(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value


def describe_layer(node: onnx.NodeProto, g_shape: list[int] | None) -> dict[str, Any]:
    attrs = _attrs(node)
    kernel = attrs.get("kernel_shape")
    kind = "conv" if kernel is not None else "matmul"
    group = int(attrs.get("group", 1)) if kind == "conv" else 1
    tile = list(attrs.get("tile_shape", [0, 0]))
    tile = (tile + [0, 0])[:2]
    layer: dict[str, Any] = {
        "name": node.name or node.output[0],
        "kind": kind,
        "K": None,
        "N": None,
        "scheme": None,
        "crossbars_per_tile": None,
        "group": group,
        "row_tiles": None,
        "col_tiles": None,
        "tiles": None,
        "crossbars": None,
        "devices": None,
        "weights": None,
        "tile_shape": tile,
        "dac_bits": int(attrs.get("dac_bits", 0)),
        "adc_bits": int(attrs.get("adc_bits", 0)),
        "adc_overflow_rate": float(attrs.get("adc_overflow_rate", 0.0)),
        "max_input_voltage": float(attrs.get("max_input_voltage", 0.3)),
        "input_range": float(attrs.get("input_range", 0.0)),
        "quantization": _decode(attrs.get("quantization", "linear")),
        "kernel_shape": list(kernel) if kernel is not None else None,
        # pooling the periphery applies to the layer's outputs (op-spec step 10; None: none)
        "max_pool": list(attrs["max_pool"]) if "max_pool" in attrs else None,
    }
    if g_shape is None or len(g_shape) != 3:
        return layer
    s, k, n = (int(d) for d in g_shape)
    n_group = n // group if group > 0 else n
    tr = tile[0] if tile[0] > 0 else k
    tc = tile[1] if tile[1] > 0 else n_group
    row_tiles = math.ceil(k / tr) if k else 0
    col_tiles = math.ceil(n_group / tc) if n_group else 0
    tiles = row_tiles * col_tiles * group
    devices = s * k * n
    if s == 1:
        devices += k * col_tiles * group  # one reference column per tile
    layer.update(
        K=k,
        N=n,
        scheme={2: "double", 1: "single"}.get(s, f"S={s}"),
        crossbars_per_tile=s,
        row_tiles=row_tiles,
        col_tiles=col_tiles,
        tiles=tiles,
        crossbars=tiles * s,
        devices=devices,
        weights=k * n,
    )
    return layer


def describe(model: onnx.ModelProto) -> dict[str, Any]:
    """Summarise a compiled model: memcc layers, totals and the nodes left digital."""
    layers: list[dict[str, Any]] = []
    digital: dict[str, int] = {}
    digital_mappable: list[dict[str, str]] = []
    for node, scope in _iter_graphs(model.graph, {}):
        if node.domain == OP_DOMAIN and node.op_type == OP_TYPE:
            g_shape = scope.get(node.input[1]) if len(node.input) > 1 else None
            layers.append(describe_layer(node, g_shape))
            continue
        key = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}"
        digital[key] = digital.get(key, 0) + 1
        if node.domain in ("", "ai.onnx") and node.op_type in MAPPABLE_OPS:
            digital_mappable.append({"name": node.name or node.output[0], "op_type": node.op_type})

    def total(field: str) -> int:
        return sum(int(layer[field] or 0) for layer in layers)

    return {
        "layers": layers,
        "totals": {
            "layers": len(layers),
            "tiles": total("tiles"),
            "crossbars": total("crossbars"),
            "devices": total("devices"),
            "weights": total("weights"),
        },
        "digital_ops": dict(sorted(digital.items())),
        "digital_mappable": digital_mappable,
    }


def _fmt_int(n: Any) -> str:
    return "?" if n is None else f"{int(n):,}"


def _bits_text(bits: int) -> str:
    return str(bits) if bits else "-"


def format_table(info: dict[str, Any]) -> str:
    """Render `describe()`'s result as a text table followed by totals and digital nodes."""
    header = ["layer", "kind", "K x N", "scheme", "xbars/tile", "tiles", "devices", "tile shape", "DAC", "ADC"]
    rows = []
    for layer in info["layers"]:
        k, n = layer["K"], layer["N"]
        kn = f"{k}x{n}" if k is not None else "?"
        if layer["row_tiles"] is not None:
            tiles = f"{layer['row_tiles']}x{layer['col_tiles']}"
            if layer["group"] > 1:
                tiles += f"x{layer['group']}g"
        else:
            tiles = "?"
        tr, tc = layer["tile_shape"]
        tile_text = "none" if tr == 0 and tc == 0 else f"{tr or 'K'}x{tc or 'N'}"
        rows.append([
            layer["name"],
            layer["kind"],
            kn,
            layer["scheme"] or "?",
            "?" if layer["crossbars_per_tile"] is None else str(layer["crossbars_per_tile"]),
            tiles,
            _fmt_int(layer["devices"]),
            tile_text,
            _bits_text(layer["dac_bits"]),
            _bits_text(layer["adc_bits"]),
        ])
    lines = []
    if rows:
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
        right = {2, 4, 5, 6, 8, 9}

        def fmt(cells: list[str]) -> str:
            return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

        lines.append(fmt(header))
        lines.append("  ".join("-" * w for w in widths))
        lines.extend(fmt(r) for r in rows)
        lines.append("")
    else:
        lines.append("no memcc layers (ai.memcc::MemristiveMatMul) in this model")
    t = info["totals"]
    lines.append(
        f"total: {t['layers']} memristive layers, {_fmt_int(t['tiles'])} tiles, "
        f"{_fmt_int(t['crossbars'])} crossbars, {_fmt_int(t['devices'])} devices "
        f"for {_fmt_int(t['weights'])} weights"
    )
    if info["digital_ops"]:
        ops = ", ".join(f"{op} x{count}" for op, count in info["digital_ops"].items())
        lines.append(f"digital nodes: {ops}")
    else:
        lines.append("digital nodes: none")
    if info["digital_mappable"]:
        lines.append("Gemm/MatMul/Conv left digital:")
        for item in info["digital_mappable"]:
            lines.append(f"  {item['name']} ({item['op_type']})")
    return "\n".join(lines)
