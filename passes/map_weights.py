"""`MapWeights`: turn each rewritten layer's weights into device conductances.

For every layer in `ctx.layers` not mapped yet, the G initializer (plain weights `W[None]`) is
replaced by the *target* conductances of `memcc.mapping.map_weights` with the nominal device window
(`ctx.nominal_device.r_on/r_off`: distributions at their means) and scheme
(`ctx.options.scheme`), and the node gets `weight_scale` (and `g_ref` in the single-column
scheme). `ProgramDevices` then replaces the targets by the conductances the devices reach.
Shows a tqdm bar over layers when `ctx.progress`.
"""

from __future__ import annotations

from onnx import helper, numpy_helper

from memcc.mapping import map_weights

from .base import OP_TYPE, CompileContext, Pass


def set_attribute(node, name: str, value) -> None:
    """Set (replace or add) one attribute of a node."""
    for i, a in enumerate(node.attribute):
        if a.name == name:
            del node.attribute[i]
            break
    node.attribute.append(helper.make_attribute(name, value))


def remove_attribute(node, name: str) -> None:
    for i, a in enumerate(node.attribute):
        if a.name == name:
            del node.attribute[i]
            return


class MapWeights(Pass):
    name = "map_weights"

    def run(self, ctx: CompileContext) -> None:
        todo = [rec for rec in ctx.layers if not rec.mapped]
        if not todo:
            return
        init_index = {t.name: i for i, t in enumerate(ctx.graph.initializer)}
        nodes = {n.name: n for n in ctx.graph.node if n.op_type == OP_TYPE}
        scheme = ctx.options.scheme
        r_on, r_off = float(ctx.nominal_device.r_on), float(ctx.nominal_device.r_off)
        iterator = todo
        show = ctx.progress
        if show is None:  # auto: only on a terminal and only when there is real work
            import sys

            big = len(todo) >= 16 or sum(r.K * r.N for r in todo) >= 4_000_000
            show = big and hasattr(sys.stderr, "isatty") and sys.stderr.isatty()
        if show:
            from tqdm.auto import tqdm

            iterator = tqdm(todo, desc="memcc: mapping layers", unit="layer")
        for rec in iterator:
            tensor = ctx.graph.initializer[init_index[rec.weight]]
            W = numpy_helper.to_array(tensor)[0]
            mapped = map_weights(W, r_on=r_on, r_off=r_off, scheme=scheme)
            ctx.replace_initializer(rec.weight, mapped.G, init_index[rec.weight])
            node = nodes[rec.node]
            set_attribute(node, "weight_scale", mapped.weight_scale)
            if mapped.G.shape[0] == 1:
                set_attribute(node, "g_ref", mapped.g_ref)
            else:
                remove_attribute(node, "g_ref")
            rec.mapped = True
            rec.scheme = scheme
            rec.weight_scale = mapped.weight_scale
            rec.g_ref = mapped.g_ref if scheme == "single" else None
