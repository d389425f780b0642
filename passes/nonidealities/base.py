"""`NonidealityPass`: the base of the compile-time non-idealities, and argument checking.

A non-ideality pass runs after `ProgramDevices` (it acts on the programmed chip) and before
`CrossbarAttributes`. For every mapped layer it reads the programmed conductances G [S, K, N],
rebuilds the layer's device instances exactly as `ProgramDevices` programmed them
(`sample_layer_devices` with `layer_seed(seed, node)`: with device-to-device variability each
device has its own window [g_off, g_on]), calls `transform` on the flattened conductances and
writes the result back (float32). Only the crossbar devices change: the single-column scheme's
reference column keeps its nominal `g_ref`.

Repeats: a class with `REPEATABLE` False (finite_states, endurance and the run-time ones) may
appear once per compilation; `check_repeats` refuses a list that names it twice, and `run`
refuses it again when a pipeline built by hand holds it twice. A repeatable pass (faults) learns
how many passes of its name with the same seed ran before it (`LayerDevicesView.occurrence`,
counted from the report) and draws from a stream of its own for each occurrence.

Each pass records per-layer statistics in `MappedLayer.nonidealities` (a list of dicts, one
per pass applied, in order) and a total in `CompileReport.nonidealities`. Every record has
`n_devices`, `n_changed` (devices whose float32 conductance changed) and `weight_error`: the
relative RMS change of the layer's computed weights D = G[0] - G[1] (double) or G[0] - g_ref
(single) caused by this pass, ||D_after - D_before|| / ||D_before||.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from onnx import numpy_helper

from memcc.errors import ConfigError

from ..base import CompileContext, MappedLayer, Pass
from ..program_devices import layer_seed, sample_layer_devices


@dataclass
class LayerDevicesView:
    """What a non-ideality sees of one layer: per-device windows and programming pulses."""

    rec: MappedLayer
    g_off: np.ndarray  # float64 (n,): each device's own lowest conductance 1/r_off
    g_on: np.ndarray  # float64 (n,): each device's own highest conductance 1/r_on
    pulses: np.ndarray  # int64 (n,): pulses each device took in ProgramDevices (0 if unknown)
    seed: int  # the layer's seed, layer_seed(compile seed, node name)
    occurrence: int = 0  # earlier passes of this name on the same stream (`NonidealityPass.occurrence`)


class NonidealityPass(Pass):
    """Base class: subclasses set `name`, `PARAMETERS` (and `ALIASES`) and implement
    `transform(g, view) -> (new_g, stats)` and `settings()`."""

    name = "nonideality"
    #: constructor keyword arguments (the keys a text spec or a TOML table may give)
    PARAMETERS: ClassVar[tuple[str, ...]] = ()
    #: short names accepted in specs → constructor keyword
    ALIASES: ClassVar[dict[str, str]] = {}
    #: False when a second instance in one compilation would be wrong or silently replace the
    #: first; `REPEAT_HINT` then says what to give instead
    REPEATABLE: ClassVar[bool] = True
    REPEAT_HINT: ClassVar[str] = "give it once"

    # ---- configuration -----------------------------------------------------------------------

    def settings(self) -> dict[str, Any]:  # pragma: no cover - abstract
        """The pass's configuration as JSON-able constructor keywords."""
        raise NotImplementedError

    def spec(self) -> dict[str, Any]:
        """{"name": ..., **settings()}: accepted back by `memcc.passes.make_nonideality`."""
        return {"name": self.name, **self.settings()}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.settings().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and self.settings() == other.settings()

    __hash__ = None  # mutable-looking configuration objects; compare with ==

    def describe(self) -> str:
        """Short text form, e.g. ``faults:stuck_lrs=0.01`` (a valid CLI spec)."""
        parts = [self.name]
        for k, v in self.settings().items():
            if v is None:
                continue
            if isinstance(v, (list, tuple)):
                v = ",".join(_short(x) for x in v)
            elif isinstance(v, float):
                v = _short(v)
            parts.append(f"{k}={v}")
        return ":".join(parts)

    def check(self, ctx: CompileContext) -> None:
        """ConfigError for a configuration the device of `ctx` rules out, found without a
        model: `memcc.compiler.check_settings` (its preflight) calls it on a context of an empty
        model (no graph, no layers; `options`, `device` and `nominal_device` set), so that `memcc
        sweep` refuses a bad point before evaluating any. No-op by default. `run` must still
        make the same checks: `compile` skips the preflight (and a hand-built pipeline may too)."""

    # ---- the work ----------------------------------------------------------------------------

    def transform(self, g: np.ndarray, view: LayerDevicesView) -> tuple[np.ndarray, dict]:  # pragma: no cover
        raise NotImplementedError

    def occurrence(self, ctx: CompileContext) -> int:
        """How many passes named like this one, drawing on the same stream (`shares_stream`), ran
        before it in `ctx` (0 for the first); ConfigError for a second one of a class that is not
        `REPEATABLE`."""
        earlier = [r for r in ctx.report.nonidealities if r.get("name") == self.name]
        if earlier and not self.REPEATABLE:
            fail(self.name, repeat_message(type(self)))
        return sum(1 for r in earlier if self.shares_stream(r.get("settings") or {}, ctx))

    def shares_stream(self, settings: dict, ctx: CompileContext) -> bool:
        """Whether an earlier pass of this name, configured by `settings`, would draw the same
        random numbers as this one (then this one takes the next stream)."""
        return True

    def run(self, ctx: CompileContext) -> None:
        todo = [rec for rec in ctx.layers if rec.mapped]
        if not todo:
            return
        occurrence = self.occurrence(ctx)
        init_index = {t.name: i for i, t in enumerate(ctx.graph.initializer)}
        pulses_by_node = {d.node: d.pulses for d in ctx.report.programmed}
        layers_stats = []
        sq_before = sq_diff = 0.0
        for rec in todo:
            G = numpy_helper.to_array(ctx.graph.initializer[init_index[rec.weight]])
            g = G.astype(np.float64).reshape(-1)
            view = layer_view(ctx, rec, g.size, pulses_by_node.get(rec.node))
            view.occurrence = occurrence
            new, stats = self.transform(g, view)
            new32 = np.asarray(new, dtype=np.float32).reshape(G.shape)
            ctx.replace_initializer(rec.weight, new32, init_index[rec.weight])
            d0, d1 = _weights(G, rec), _weights(new32, rec)
            n0, nd = float(np.sum(d0 * d0)), float(np.sum((d1 - d0) ** 2))
            sq_before += n0
            sq_diff += nd
            record = {"name": self.name, "n_devices": int(g.size),
                      "n_changed": int(np.count_nonzero(new32 != G)), **stats,
                      "weight_error": math.sqrt(nd / n0) if n0 > 0 else math.sqrt(nd)}
            rec.nonidealities.append(record)
            layers_stats.append(record)
        total = _combine(layers_stats)
        total["weight_error"] = math.sqrt(sq_diff / sq_before) if sq_before > 0 else math.sqrt(sq_diff)
        ctx.report.nonidealities.append({"name": self.name, "settings": self.settings(), "total": total})


def _short(x: float) -> str:
    """The shortest text of a number that reads back as the same float."""
    text = f"{x:g}"
    return text if float(text) == x else repr(float(x))


def _weights(G: np.ndarray, rec: MappedLayer) -> np.ndarray:
    G = G.astype(np.float64)
    if G.shape[0] == 2:
        return G[0] - G[1]
    return G[0] - (float(rec.g_ref) if rec.g_ref is not None else 0.0)


def _combine(records: list[dict]) -> dict:
    """Totals over layers: `n_*` counts summed, `mean_*` device-weighted, `max_*`/`min_*`
    extremes, other values kept when every layer has the same."""
    total: dict[str, Any] = {}
    n_all = sum(r["n_devices"] for r in records)
    for key in records[0] if records else ():
        if key in ("name", "weight_error"):
            continue
        values = [r.get(key) for r in records]
        if any(v is None for v in values):
            continue
        if key.startswith("mean_"):
            total[key] = sum(float(v) * r["n_devices"] for v, r in zip(values, records)) / n_all if n_all else 0.0
        elif key.startswith("max_"):
            total[key] = max(values)
        elif key.startswith("min_"):
            total[key] = min(values)
        elif key.startswith("n_"):
            total[key] = int(sum(values))
        elif all(v == values[0] for v in values):
            total[key] = values[0]
    return total


def layer_view(ctx: CompileContext, rec: MappedLayer, n: int, pulses=None) -> LayerDevicesView:
    """The device windows (and programming pulses) of layer `rec`'s `n` devices.

    The instances are `ProgramDevices`' own: `sample_layer_devices(ctx.device, n, seed, node)`.
    """
    model = sample_layer_devices(ctx.device, n, ctx.options.seed, rec.node)
    g_off = np.broadcast_to(np.asarray(model.g_off, dtype=np.float64), (n,))
    g_on = np.broadcast_to(np.asarray(model.g_on, dtype=np.float64), (n,))
    if pulses is None or np.size(pulses) != n:
        p = np.zeros(n, dtype=np.int64)
    else:
        p = np.asarray(pulses, dtype=np.int64).reshape(-1)
    return LayerDevicesView(rec=rec, g_off=g_off, g_on=g_on, pulses=p, seed=layer_seed(ctx.options.seed, rec.node))


# --------------------------------------------------------------------------------------------
# Argument checking (values may come as text from the CLI)
# --------------------------------------------------------------------------------------------


def fail(name: str, message: str):
    raise ConfigError(f"nonideality {name}: {message}")


def number_arg(nd: str, key: str, value, *, low: float | None = None, high: float | None = None,
               low_open: bool = False, integer: bool = False, allow_none: bool = False):
    """A number (or its text form) checked against [low, high] (`low_open`: low excluded)."""
    if value is None and allow_none:
        return None
    v = value
    if isinstance(v, str):
        text = v.strip()
        try:
            v = float(text)
        except ValueError:
            fail(nd, f"{key} must be a number, got {value!r}")
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        fail(nd, f"{key} must be a number, got {value!r}")
    v = float(v)
    if not math.isfinite(v):
        fail(nd, f"{key} must be finite, got {value!r}")
    if integer:
        if v != int(v):
            fail(nd, f"{key} must be an integer, got {value!r}")
    if low is not None and (v < low or (low_open and v == low)):
        fail(nd, f"{key} must be {'>' if low_open else '>='} {low:g}, got {v:g}")
    if high is not None and v > high:
        fail(nd, f"{key} must be <= {high:g}, got {v:g}")
    return int(v) if integer else v


def number_list_arg(nd: str, key: str, value) -> list[float]:
    """A list of numbers: a sequence or text "a,b,c"."""
    if isinstance(value, str):
        items = [t for t in (s.strip() for s in value.replace(";", ",").split(",")) if t]
    elif isinstance(value, (list, tuple, np.ndarray)):
        items = list(np.asarray(value, dtype=object).reshape(-1))
    else:
        fail(nd, f"{key} must be a list of numbers, got {value!r}")
    if not items:
        fail(nd, f"{key} must not be empty")
    return [number_arg(nd, f"{key} entry", x) for x in items]


def word_arg(nd: str, key: str, value, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value.strip().lower() not in choices:
        fail(nd, f"{key} must be one of {', '.join(choices)}, got {value!r}")
    return value.strip().lower()


def repeat_message(cls: type[NonidealityPass]) -> str:
    return f"given more than once; {cls.REPEAT_HINT}"


def check_repeats(passes) -> None:
    """ConfigError when a non-ideality that is not `REPEATABLE` appears twice in `passes`."""
    seen: set[str] = set()
    for p in passes:
        if not isinstance(p, NonidealityPass):
            continue
        if p.name in seen and not p.REPEATABLE:
            fail(p.name, repeat_message(type(p)))
        seen.add(p.name)


def check_keys(cls: type[NonidealityPass], kwargs: dict) -> dict:
    """Resolve aliases; ConfigError on unknown or repeated keys."""
    out: dict[str, Any] = {}
    for raw, value in kwargs.items():
        key = str(raw).strip().replace("-", "_")
        key = cls.ALIASES.get(key, key)
        if key not in cls.PARAMETERS:
            known = list(cls.PARAMETERS) + list(cls.ALIASES)
            close = difflib.get_close_matches(str(raw), known, n=1)
            fail(cls.name, f"unknown parameter {raw!r}"
                 + (f" (did you mean {close[0]!r}?)" if close else "")
                 + f"; its parameters: {', '.join(cls.PARAMETERS)}")
        if key in out:
            fail(cls.name, f"parameter {key!r} is given twice")
        out[key] = value
    return out
