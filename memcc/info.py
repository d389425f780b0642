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

Every layer also lists the op attributes that set its behaviour at run time (read noise, drift,
I-V nonlinearity, fused activation and pooling, conv geometry, seeds), absent ones at their
op-spec defaults; `runtime_effects` says the same in words. The device model is not part of the
op: it is reported only when the model's metadata records it (`DEVICE_METADATA_KEY`).
"""

from __future__ import annotations

import math
from typing import Any, Iterator

import numpy as np
import onnx
from onnx import helper

from memcc import OP_DOMAIN, OP_TYPE
from memcc.reference import ATTRIBUTE_DEFAULTS

#: Op types that memcc maps; when one of them is still in the compiled model, it runs digitally.
MAPPABLE_OPS = ("Gemm", "MatMul", "Conv")

#: metadata_props key naming the device model a compiled model was programmed for. The op's
#: attributes do not say which device produced the conductances, so without this entry the
#: device is unknown here.
DEVICE_METADATA_KEY = "memcc.device"

#: Defaults of the conv geometry per spatial axis (value, values per axis); the spec states them
#: in terms of the kernel's rank, so `ATTRIBUTE_DEFAULTS` leaves them None.
_CONV_GEOMETRY_DEFAULTS = {"strides": (1, 1), "pads": (0, 2), "dilations": (1, 1)}


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


def _f32(value: Any) -> float | None:
    """A float attribute as the shortest decimal that is the same float32 (0.1, not
    0.10000000149011612): attributes are stored in float32, more digits are noise."""
    if value is None:
        return None
    return float(str(np.float32(value)))


def _plain(value: Any) -> Any:
    """An attribute value in JSON types (tensors and graphs by a short description)."""
    value = _decode(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float):
        return _f32(value)
    if isinstance(value, (int, str)) or value is None:
        return value
    return type(value).__name__


def runtime_effects(layer: dict[str, Any]) -> list[str]:
    """What the op does at every read beyond the ideal product, in short words, in op order."""
    out = []
    if layer.get("read_noise_std"):
        out.append(f"read noise {layer['read_noise_std'] * 100:.3g} %")
    if layer.get("drift_nu") or layer.get("drift_nu_std"):
        text = f"drift nu {layer['drift_nu']:g}"
        if layer.get("drift_nu_std"):
            text += f" +- {layer['drift_nu_std']:g}"
        text += f" t0 {layer['drift_t0']:g} s"
        text += (f" (time input {layer['time_input']})" if layer.get("time_input")
                 else " (no time input: reads at t0)")
        out.append(text)
    if layer.get("iv_b"):
        out.append(f"I-V sinh (a {layer['iv_a']:.3g}, b {layer['iv_b']:.3g})")
    if layer.get("activation", "NONE") != "NONE":
        out.append(str(layer["activation"]).lower())
    if layer.get("max_pool"):
        out.append("pool " + "x".join(str(m) for m in layer["max_pool"]))
    return out


def describe_layer(node: onnx.NodeProto, g_shape: list[int] | None) -> dict[str, Any]:
    attrs = _attrs(node)

    def spec(name: str) -> Any:
        return attrs.get(name, ATTRIBUTE_DEFAULTS[name])

    kernel = spec("kernel_shape")
    kind = "conv" if kernel is not None else "matmul"
    group = int(spec("group")) if kind == "conv" else 1
    tile = (list(spec("tile_shape")) + [0, 0])[:2]
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
        "dac_bits": int(spec("dac_bits")),
        "adc_bits": int(spec("adc_bits")),
        "adc_overflow_rate": _f32(spec("adc_overflow_rate")),
        "max_input_voltage": _f32(spec("max_input_voltage")),
        "input_range": _f32(spec("input_range")),
        "quantization": _decode(spec("quantization")),
        "kernel_shape": list(kernel) if kernel is not None else None,
        # pooling the periphery applies to the layer's outputs (op-spec step 10; None: none)
        "max_pool": list(attrs["max_pool"]) if "max_pool" in attrs else None,
        # None when absent: the op requires it, so there is no default to show
        "weight_scale": _f32(spec("weight_scale")),
        "g_ref": _f32(spec("g_ref")),
        "activation": str(_decode(spec("activation"))).upper(),
        "read_noise_std": _f32(spec("read_noise_std")),
        "noise_seed": int(spec("noise_seed")),
        "drift_nu": _f32(spec("drift_nu")),
        "drift_nu_std": _f32(spec("drift_nu_std")),
        "drift_t0": _f32(spec("drift_t0")),
        "drift_seed": int(spec("drift_seed")),
        # the graph input holding the time since programming (op input T), if the node reads one
        "time_input": node.input[3] if len(node.input) > 3 and node.input[3] else None,
        "iv_a": _f32(spec("iv_a")),
        "iv_b": _f32(spec("iv_b")),
    }
    if kind == "conv":
        n = len(kernel)
        for name, (value, per_axis) in _CONV_GEOMETRY_DEFAULTS.items():
            layer[name] = list(attrs.get(name, [value] * (per_axis * n)))
        layer["auto_pad"] = _decode(spec("auto_pad"))
    else:
        layer.update(dict.fromkeys((*_CONV_GEOMETRY_DEFAULTS, "auto_pad")))
    # what a later op version may add is still shown, as it is
    layer["other_attributes"] = {k: _plain(v) for k, v in attrs.items() if k not in ATTRIBUTE_DEFAULTS}
    layer["runtime_effects"] = runtime_effects(layer)
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

    metadata = {p.key: p.value for p in model.metadata_props}
    return {
        # None when the model does not record it: the op attributes cannot tell
        "device": metadata.get(DEVICE_METADATA_KEY),
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


def _common_effects(layers: list[dict[str, Any]]) -> list[str]:
    """The run-time effects every layer has (same words, same settings)."""
    if not layers:
        return []
    rest = [set(layer.get("runtime_effects", [])) for layer in layers[1:]]
    return [e for e in layers[0].get("runtime_effects", []) if all(e in r for r in rest)]


def format_table(info: dict[str, Any]) -> str:
    """Render `describe()`'s result as a text table followed by totals and digital nodes.

    Run-time effects shared by every layer (typically the non-idealities, applied model-wide)
    go into one footer line; only the effects that differ between layers (fused Relu/pooling,
    say) get a column, so the table stays narrow however many layers there are.
    """
    common = _common_effects(info["layers"])
    per_layer = [[e for e in layer.get("runtime_effects", []) if e not in common] for layer in info["layers"]]
    effects_column = any(per_layer)
    header = ["layer", "kind", "K x N", "scheme", "xbars/tile", "tiles", "devices", "tile shape", "DAC", "ADC"]
    if effects_column:
        header.append("run-time")
    rows = []
    for layer, extra in zip(info["layers"], per_layer):
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
        row = [
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
        ]
        if effects_column:
            row.append(", ".join(extra) or "-")
        rows.append(row)
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
    if rows:
        if common:
            scope = "every layer" if len(rows) > 1 else "the layer"
            lines.append(f"run-time effects ({scope}): {', '.join(common)}")
        elif not effects_column:
            lines.append("run-time effects: none")
    device = info.get("device")
    lines.append(
        f"device model: {device} (model metadata {DEVICE_METADATA_KEY!r})" if device
        else "device model: not recorded in the model (the compile report names it)"
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
