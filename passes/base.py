"""Pass infrastructure: `Pass`, `Pipeline`, `CompileContext`, `CompileOptions`, `CompileReport`.

A pass has one job and a `run(ctx)` method that edits `ctx.model` in place. Passes communicate
only through the model and through `ctx.layers` (the layers the rewrite passes turned into
`ai.memcc::MemristiveMatMul` nodes, in graph order). Between passes the model is always a valid
ONNX model: a freshly rewritten layer is a MemristiveMatMul whose `G` holds the plain weights
(`G = W[None]`, `g_ref = 0`, `weight_scale = 1`, i.e. D = W), which `MapWeights` later turns into
device conductances.

Only the top-level graph is rewritten; sub-graphs (If/Loop/Scan bodies) and functions stay as
they are.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import onnx
from onnx import helper, numpy_helper

from memcc.errors import ConfigError

OP_DOMAIN = "ai.memcc"
OP_TYPE = "MemristiveMatMul"
OP_VERSION = 1

SCHEMES = ("double", "single")


# --------------------------------------------------------------------------------------------
# Options
# --------------------------------------------------------------------------------------------


def _fail(msg: str):
    raise ConfigError(msg)


def _check_bits(name: str, v) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        _fail(f"{name} must be an integer (0 or 2..24), got {v!r}")
    if v != 0 and not 2 <= v <= 24:
        _fail(f"{name} must be 0 (off) or 2..24, got {v}")
    return int(v)


def _check_float(name: str, v, *, positive=False, non_negative=False, below_one=False) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        _fail(f"{name} must be a number, got {v!r}")
    v = float(v)
    if not math.isfinite(v):
        _fail(f"{name} must be finite, got {v}")
    if positive and not v > 0:
        _fail(f"{name} must be > 0, got {v:g}")
    if non_negative and v < 0:
        _fail(f"{name} must be >= 0, got {v:g}")
    if below_one and not 0 <= v < 1:
        _fail(f"{name} must satisfy 0 <= value < 1, got {v:g}")
    return v


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


@dataclass(frozen=True)
class CompileOptions:
    """The settings of one compilation (the keyword arguments of `memcc.compile`).

    `validated()` returns a checked copy (ConfigError with a one-line message otherwise).
    `device` is a name from `memcc.devices.list_devices()` or a `memcc.devices.DeviceModel`;
    `device_params` overrides its parameters (a mapping name → number / text form such as
    ``"50:std=10:min=1"`` / `Distribution` / {mean, std, min, max} table, or a list of
    ``"name=value"`` strings); `r_on`/`r_off` override the device's resistances when not None.
    `d2d_std`: relative std of r_on and r_off across devices (device-to-device variability),
    applied to whichever of the two the user did not set; None: the device's `D2D_STD` (10 % for
    the physical models, 0 for `ideal`).
    `programming`: None (the device's default: "naive" for the physical models, "ideal" for the
    ideal device), "naive" or "ideal"; `programming_options`: keyword arguments of
    `memcc.programming.program_naive` (tolerance, max_pulses, set_voltage, reset_voltage,
    pulse_width, reset_pulse_width, initial, dt, adaptive, max_doublings, min_pulse_width,
    chunk_size, workers; None values are ignored).
    """

    device: Any = "ideal"
    scheme: str = "double"
    tile: tuple[int, int] = (0, 0)
    dac_bits: int = 0
    adc_bits: int = 0
    adc_overflow_rate: float = 0.0
    max_input_voltage: float = 0.3
    input_range: float = 0.0
    r_on: float | None = None
    r_off: float | None = None
    seed: int = 0
    device_params: Any = None
    programming: str | None = None
    programming_options: Any = None
    d2d_std: float | None = None

    def validated(self) -> "CompileOptions":
        from dataclasses import replace

        if not isinstance(self.scheme, str) or self.scheme.lower() not in SCHEMES:
            _fail(f"scheme must be one of {', '.join(SCHEMES)}, got {self.scheme!r}")
        tile = self.tile
        if isinstance(tile, (int, np.integer)) and not isinstance(tile, bool):
            tile = (int(tile), int(tile))
        if (
            not isinstance(tile, (tuple, list))
            or len(tile) != 2
            or any(isinstance(t, bool) or not isinstance(t, (int, np.integer)) or t < 0 for t in tile)
        ):
            _fail(f"tile must be two integers >= 0 (rows, cols; 0 = no split), got {self.tile!r}")
        r = {}
        for name in ("r_on", "r_off"):
            v = getattr(self, name)
            r[name] = None if v is None else _check_float(name, v, positive=True)
        if r["r_on"] is not None and r["r_off"] is not None and not r["r_on"] < r["r_off"]:
            _fail(f"r_on ({r['r_on']:g} ohm) must be smaller than r_off ({r['r_off']:g} ohm)")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            _fail(f"seed must be an integer >= 0, got {self.seed!r}")
        return replace(
            self,
            scheme=self.scheme.lower(),
            tile=(int(tile[0]), int(tile[1])),
            dac_bits=_check_bits("dac_bits", self.dac_bits),
            adc_bits=_check_bits("adc_bits", self.adc_bits),
            adc_overflow_rate=_check_float("adc_overflow_rate", self.adc_overflow_rate, below_one=True),
            max_input_voltage=_check_float("max_input_voltage", self.max_input_voltage, positive=True),
            input_range=_check_float("input_range", self.input_range, non_negative=True),
            r_on=r["r_on"],
            r_off=r["r_off"],
            seed=int(self.seed),
            device_params=_check_device_params(self.device_params, r),
            programming=_check_programming(self.programming),
            programming_options=_check_programming_options(self.programming_options),
            d2d_std=None if self.d2d_std is None else _check_float("d2d_std", self.d2d_std, non_negative=True),
        )

    def make_device(self):
        """The `memcc.devices.DeviceModel` these options describe (ConfigError if invalid).

        Its parameters may still be distributions (sampled per device by `ProgramDevices`).
        """
        from memcc.devices import get_device

        from memcc.devices import DeviceModel

        params = dict(self.device_params or {})
        params.update({k: v for k, v in (("r_on", self.r_on), ("r_off", self.r_off)) if v is not None})
        device = get_device(self.device, **params)
        # Device-to-device variability of r_on/r_off: the model's default spread unless the user
        # fixed those parameters or handed over a configured DeviceModel.
        if self.d2d_std is not None:
            return device.with_d2d_std(self.d2d_std, keep=params)
        if isinstance(self.device, DeviceModel):
            return device
        return device.with_d2d_std(device.D2D_STD, keep=params)

    def programming_method(self, device) -> str:
        """The programming method for `device`: `programming`, or the device's default.

        ConfigError when the device does not support the method, or when options are given
        for a method that takes none, or when an option value is invalid.
        """
        from memcc.devices import nominal_device, programming_methods

        methods = programming_methods(device)
        method = self.programming or methods[0]
        if method not in methods:
            raise ConfigError(
                f"device {device.name!r} supports programming {' or '.join(map(repr, methods))}, not {method!r}"
                + (" (it has no switching dynamics; its conductances are set to target)" if methods == ("ideal",) else "")
            )
        opts = dict(self.programming_options or {})
        if method == "ideal":
            if opts:
                raise ConfigError(
                    f"programming 'ideal' sets conductances directly and takes no options "
                    f"(got {', '.join(sorted(opts))}); they apply to programming 'naive'"
                )
            return method
        # a dry run on no devices checks the option values (pulse polarity, tolerance, ...)
        from memcc.programming import program_naive

        try:
            nominal = nominal_device(device)
            program_naive(nominal, np.empty(0), **opts)
        except (TypeError, ValueError) as exc:
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(f"programming_options: {exc}") from None
        return method


PROGRAMMING_METHODS = ("naive", "ideal")
#: keyword arguments of `memcc.programming.program_naive` a compilation may set.
PROGRAMMING_OPTIONS = (
    "tolerance", "max_pulses", "set_voltage", "reset_voltage", "pulse_width", "reset_pulse_width",
    "initial", "dt", "adaptive", "max_doublings", "min_pulse_width", "chunk_size", "workers",
)


def check_known_keys(keys: Iterable, accepted: Iterable[str], what: str, listed: str,
                     hints: dict[str, str] | None = None) -> None:
    """ConfigError `<what> 'a' (did you mean ...?); <listed>: x, y, z` when some of `keys` are not
    `accepted`, naming all of them (`what` gets an "s" for several); the hint is for the first,
    `hints[key]` where the close-match guess would mislead."""
    accepted = list(accepted)
    unknown = sorted(str(k) for k in keys if k not in accepted)
    if not unknown:
        return
    hint = (hints or {}).get(unknown[0])
    if hint is None:
        import difflib

        close = difflib.get_close_matches(unknown[0], accepted, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
    names = ", ".join(map(repr, unknown))
    _fail(f"{what}{'s' if len(unknown) > 1 else ''} {names}{hint}; {listed}: {', '.join(accepted)}")


def _check_device_params(params, r: dict) -> dict | None:
    if params is None:
        return None
    from collections.abc import Mapping

    from memcc.devices.parameters import parse_parameters

    if not isinstance(params, (Mapping, list, tuple, str)):
        _fail(f"device_params must be a mapping name → value or a list of 'name=value' strings, got {params!r}")
    if isinstance(params, Mapping):
        params = {k: v for k, v in params.items() if v is not None}
        bad = [k for k in params if not isinstance(k, str)]
        if bad:
            _fail(f"device_params: parameter names must be strings, got {bad[0]!r}")
    out = parse_parameters(params)  # ParameterError (a ConfigError) on bad values
    both = sorted(k for k in ("r_on", "r_off") if k in out and r.get(k) is not None)
    if both:
        _fail(f"{both[0]} is given both as {both[0]}= and in device_params; give it once")
    return out or None


def _check_programming(method) -> str | None:
    if method is None:
        return None
    if not isinstance(method, str) or method.strip().lower() not in PROGRAMMING_METHODS:
        _fail(f"programming must be one of {', '.join(PROGRAMMING_METHODS)} (or None: the device's default), got {method!r}")
    return method.strip().lower()


def _check_programming_options(opts) -> dict | None:
    if opts is None:
        return None
    from collections.abc import Mapping

    if not isinstance(opts, Mapping):
        _fail(f"programming_options must be a mapping, got {opts!r}")
    opts = {k: v for k, v in opts.items() if v is not None}
    check_known_keys(opts, PROGRAMMING_OPTIONS, "unknown programming option", "known")
    for key in ("tolerance", "set_voltage", "reset_voltage", "pulse_width", "reset_pulse_width", "dt",
                "min_pulse_width"):
        if key in opts:
            opts[key] = _check_float(f"programming option {key}", opts[key])
    for key in ("max_pulses", "max_doublings", "chunk_size", "workers"):
        if key in opts:
            v = opts[key]
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < (1 if key in ("chunk_size", "workers") else 0):
                _fail(f"programming option {key} must be an integer >= {1 if key in ('chunk_size', 'workers') else 0}, got {v!r}")
            opts[key] = int(v)
    if "adaptive" in opts and not isinstance(opts["adaptive"], (bool, np.bool_)):
        _fail(f"programming option adaptive must be true or false, got {opts['adaptive']!r}")
    return opts or None


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


@dataclass
class MappedLayer:
    """One layer rewritten into a MemristiveMatMul node.

    `kind`: "gemm", "matmul" or "conv". `K`, `N`: the crossbar matrix (rows × columns, per group
    for `N // group` columns). `tiles`: number of crossbar tiles (row tiles × column tiles × groups),
    filled in by `CrossbarAttributes`. `scheme`, `weight_scale`, `g_ref`: filled by `MapWeights`.
    """

    node: str  # name of the MemristiveMatMul node
    source: str  # name of the original node
    op_type: str  # original op type
    kind: str
    K: int
    N: int
    group: int = 1
    weight: str = ""  # initializer name of G
    bias: str = ""  # input name of the bias ("" if none)
    kernel_shape: tuple[int, ...] | None = None
    mapped: bool = False
    scheme: str | None = None
    weight_scale: float | None = None
    g_ref: float | None = None
    tile_shape: tuple[int, int] = (0, 0)
    tiles: int = 1
    notes: list[str] = field(default_factory=list)
    #: programming statistics of the layer's devices, filled by `ProgramDevices` (see
    #: `memcc.passes.program_devices.layer_stats`); None if the layer was not programmed.
    programming: dict | None = None
    #: statistics of the non-idealities applied to the layer's devices, one dict per pass in
    #: order (see `memcc.passes.nonidealities`); empty if none.
    nonidealities: list = field(default_factory=list)

    @property
    def weight_shape(self) -> tuple[int, int]:
        return (self.K, self.N)

    @property
    def devices(self) -> int:
        """Number of memristive devices (cells) the layer occupies, reference columns excluded."""
        s = 2 if self.scheme == "double" else 1
        return s * self.K * self.N


@dataclass
class SkippedNode:
    """A Gemm/MatMul/Conv (or other candidate) left digital, with the reason."""

    node: str
    op_type: str
    reason: str


@dataclass
class CompileReport:
    """What a compilation did: `mapped` layers, `skipped` nodes, `passes` run, `notes`, and
    `programming` (device, method, settings and totals of the `ProgramDevices` pass, or None),
    `nonidealities` (one {name, settings, total} dict per non-ideality pass, in order).

    `programmed` holds the per-device programming outcome (relative errors, pulses, ...) of
    every layer for plots (`memcc.compiler.write_report`); it is not part of `as_dict()`.
    """

    mapped: list[MappedLayer] = field(default_factory=list)
    skipped: list[SkippedNode] = field(default_factory=list)
    passes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    programming: dict | None = None
    nonidealities: list = field(default_factory=list)
    programmed: list = field(default_factory=list, repr=False, compare=False)

    def skip(self, node: onnx.NodeProto, reason: str) -> None:
        self.skipped.append(SkippedNode(node.name, node.op_type, reason))

    def summary(self) -> str:
        """A human-readable multi-line summary."""
        lines = [f"mapped {_count(len(self.mapped), 'layer')}, skipped {_count(len(self.skipped), 'node')}"]
        for m in self.mapped:
            extra = f", group {m.group}" if m.group != 1 else ""
            p = m.programming
            if p:
                from memcc.programming import outcome_text

                extra += ", " + outcome_text(p, short=True)
            lines.append(
                f"  {m.source or m.node} ({m.op_type}): K={m.K} N={m.N}{extra}, {_count(m.tiles, 'tile')}"
            )
        for s in self.skipped:
            lines.append(f"  skipped {s.node or '<unnamed>'} ({s.op_type}): {s.reason}")
        if self.programming:
            lines.append("  " + programming_line(self.programming))
        lines.extend("  " + nonideality_line(n) for n in self.nonidealities)
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)

    def as_dict(self) -> dict:
        """A JSON-serialisable dict (non-finite numbers become None)."""
        from dataclasses import asdict

        return _jsonable({
            "mapped": [asdict(m) for m in self.mapped],
            "skipped": [asdict(s) for s in self.skipped],
            "passes": list(self.passes),
            "notes": list(self.notes),
            "programming": self.programming,
            "nonidealities": list(self.nonidealities),
        })


def programming_line(p: dict) -> str:
    """One line describing a compilation's programming (`CompileReport.programming`)."""
    t = p.get("total") or {}
    tol = t.get("tolerance")
    how = f"{p.get('device')}, {p.get('method')}" + (f", tolerance {tol:.3g}" if p.get("method") == "naive" and tol else "")
    from memcc.programming import outcome_text

    line = f"programmed {t.get('n_programmed', 0):,} devices ({how}): {outcome_text(t)}"
    if t.get("mean") is not None:
        line += (
            f"; relative error mean {t['mean']:+.2%}, std {t['std']:.2%}, max |e| {t['max_abs']:.2%}"
        )
    if t.get("mean_pulses") is not None and p.get("method") == "naive":
        line += f"; {t['mean_pulses']:.1f} pulses/device"
    if t.get("seconds") is not None:
        line += f"; {t['seconds']:.2f} s"
    return line


def nonideality_line(entry: dict) -> str:
    """One line describing a non-ideality pass's effect (`CompileReport.nonidealities` entry)."""
    t = entry.get("total") or {}
    settings = ", ".join(
        f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in (entry.get("settings") or {}).items()
        if not isinstance(v, (list, tuple))
    )
    states = (entry.get("settings") or {}).get("states")
    if states is not None:
        settings = f"{len(states)} measured states" + (f", {settings}" if settings else "")
    counts = [f"{t[k]:,} {k[2:].replace('_', ' ')}" for k in t
              if k.startswith("n_") and k != "n_devices" and isinstance(t[k], int)]
    line = f"nonideality {entry.get('name')} ({settings}): {t.get('n_devices', 0):,} devices"
    if counts:
        line += ", " + ", ".join(counts)
    if t.get("mean_window_shrink") is not None:
        line += f"; mean window shrink {t['mean_window_shrink']:.2%}"
    if t.get("weight_error") is not None:
        line += f"; weight error {t['weight_error']:.2%}"
    return line


def _jsonable(x):
    """Plain JSON types: numpy scalars → Python, tuples → lists, NaN/inf → None."""
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return [_jsonable(v) for v in x.tolist()]
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        x = float(x)
        return x if math.isfinite(x) else None
    if x is None or isinstance(x, str):
        return x
    return str(x)


# --------------------------------------------------------------------------------------------
# Context
# --------------------------------------------------------------------------------------------


class CompileContext:
    """Everything a pass may read or change.

    - `model`: the ONNX model being compiled (a private copy; passes edit it in place).
    - `options`: the validated `CompileOptions`; `device`: the `DeviceModel` they describe
      (parameters may be distributions); `nominal_device`: the same with every distribution
      at its mean (the mapping window); `programming`: the programming method ("naive" or
      "ideal", resolved from the options and the device).
    - `report`: the `CompileReport` passes add to.
    - `layers`: `MappedLayer` records of the MemristiveMatMul nodes written so far.
    - `rng`: a `numpy.random.Generator` seeded with `options.seed` (for stochastic passes).
    - `progress`: True/False: show progress bars or not; None: passes decide (on a TTY, for
      large models).
    - `value_info`: name → (elem_type, shape or None) from shape inference (`Normalize`).
    - `source`: the caller's original model, never modified (may be None).
    """

    def __init__(self, model: onnx.ModelProto, options: CompileOptions | None = None, *,
                 progress: bool | None = False, device=None):
        self.model = model
        self.options = (options or CompileOptions()).validated()
        self.device = device if device is not None else self.options.make_device()
        from memcc.devices import nominal_device

        self.nominal_device = nominal_device(self.device)
        if self.nominal_device.n_devices is not None:
            raise ConfigError(
                f"device {self.device.name!r} holds per-device parameter arrays; give distributions "
                "instead (they are sampled once per device of each layer)"
            )
        self.programming = self.options.programming_method(self.device)
        self.report = CompileReport()
        self.layers: list[MappedLayer] = self.report.mapped  # the same list
        self.rng = np.random.default_rng(self.options.seed)
        self.progress = progress
        self.value_info: dict[str, tuple[int, tuple | None]] = {}
        self.source: onnx.ModelProto | None = None  # the caller's model (read-only), if known
        self._names: set[str] | None = None
        #: Facts a pass derived from the top-level graph's nodes, kept for the next question of
        #: the same kind (keyed by their module). Valid while the nodes stay as they are: a pass
        #: that replaces nodes clears it, and `Pipeline.run` clears it before every pass, for
        #: passes that do not.
        self.graph_cache: dict[str, Any] = {}
        used = set(self.graph_output_names())
        for n in self.graph.node:
            used.update(n.input)
            used.update(_implicit_inputs(n))
        #: initializers nothing read in the input model (Cleanup leaves them alone)
        self.initially_unused = {t.name for t in self.graph.initializer} - used

    @property
    def graph(self) -> onnx.GraphProto:
        return self.model.graph

    # ---- opsets ------------------------------------------------------------------------------

    def opset(self, domain: str = "") -> int:
        """The model's opset version for `domain` (0 if not imported)."""
        for imp in self.model.opset_import:
            if imp.domain in (domain, "ai.onnx" if domain == "" else domain):
                return imp.version
        return 0

    def ensure_memcc_opset(self) -> None:
        for imp in self.model.opset_import:
            if imp.domain == OP_DOMAIN:
                if imp.version != OP_VERSION:
                    imp.version = OP_VERSION
                return
        self.model.opset_import.append(helper.make_opsetid(OP_DOMAIN, OP_VERSION))

    # ---- names -------------------------------------------------------------------------------

    def _all_names(self) -> set[str]:
        names: set[str] = set()
        for graph in _graphs_within(self.graph):
            for n in graph.node:
                names.add(n.name)
                names.update(n.input)
                names.update(n.output)
            names.update(t.name for t in graph.initializer)
            names.update(v.name for v in graph.input)
            names.update(v.name for v in graph.output)
            names.update(v.name for v in graph.value_info)
        names.discard("")
        return names

    def unique_name(self, base: str) -> str:
        """A name used nowhere in the model yet, derived deterministically from `base`."""
        if self._names is None:
            self._names = self._all_names()
        base = base or "memcc"
        name, i = base, 1
        while name in self._names:
            name = f"{base}_{i}"
            i += 1
        self._names.add(name)
        return name

    def node_label(self, node: onnx.NodeProto, index: int) -> str:
        """The node's name, or a deterministic stand-in for unnamed nodes."""
        return node.name or f"{node.op_type}_{index}"

    # ---- tensors -----------------------------------------------------------------------------

    def initializers(self) -> dict[str, onnx.TensorProto]:
        return {t.name: t for t in self.graph.initializer}

    def constant(self, name: str, inits: dict | None = None) -> np.ndarray | None:
        """The value of `name` if it is an initializer of the top-level graph, else None."""
        if not name:
            return None
        inits = self.initializers() if inits is None else inits
        t = inits.get(name)
        if t is None:
            return None
        return numpy_helper.to_array(t)

    def add_initializer(self, array: np.ndarray, base_name: str) -> str:
        """Add `array` as a new initializer with a unique name derived from `base_name`.

        In IR version < 4 models every initializer must also be a graph input; one is added.
        """
        name = self.unique_name(base_name)
        tensor = numpy_helper.from_array(np.ascontiguousarray(array), name)
        self.graph.initializer.append(tensor)
        if self.model.ir_version < 4:
            self.graph.input.append(
                helper.make_tensor_value_info(name, tensor.data_type, list(tensor.dims))
            )
        return name

    def replace_initializer(self, name: str, array: np.ndarray, index: int | None = None) -> None:
        """Give initializer `name` a new value (and fix its graph-input declaration, if any)."""
        tensor = numpy_helper.from_array(np.ascontiguousarray(array), name)
        if index is None:
            index = next(i for i, t in enumerate(self.graph.initializer) if t.name == name)
        self.graph.initializer[index].CopyFrom(tensor)
        for vi in self.graph.input:
            if vi.name == name:
                vi.CopyFrom(helper.make_tensor_value_info(name, tensor.data_type, list(tensor.dims)))

    def elem_type(self, name: str) -> int | None:
        """Element type of a value: initializer, graph input, or shape inference; None if unknown."""
        for t in self.graph.initializer:
            if t.name == name:
                return t.data_type
        info = self.value_info.get(name)
        return info[0] if info else None

    def shape(self, name: str) -> tuple | None:
        info = self.value_info.get(name)
        return info[1] if info else None

    def graph_output_names(self) -> set[str]:
        return {o.name for o in self.graph.output}

    def consumers(self) -> dict[str, list[onnx.NodeProto]]:
        """value name → top-level nodes reading it (sub-graph reads count under their parent node)."""
        out: dict[str, list[onnx.NodeProto]] = {}
        for n in self.graph.node:
            for name in set(n.input) | _implicit_inputs(n):
                if name:
                    out.setdefault(name, []).append(n)
        return out

    def producers(self) -> dict[str, onnx.NodeProto]:
        return {o: n for n in self.graph.node for o in n.output if o}

    def layer(self, node_name: str) -> MappedLayer | None:
        for rec in self.layers:
            if rec.node == node_name:
                return rec
        return None


def _subgraphs(node: onnx.NodeProto):
    """The graphs held by a node's attributes (If/Loop/Scan bodies)."""
    for a in node.attribute:
        if a.type == onnx.AttributeProto.GRAPH:
            yield a.g
        yield from a.graphs


def _graphs_within(graph: onnx.GraphProto):
    """`graph` and every sub-graph nested in it, at any depth."""
    yield graph
    for n in graph.node:
        for sub in _subgraphs(n):
            yield from _graphs_within(sub)


def _implicit_inputs(node: onnx.NodeProto) -> set[str]:
    """Names a node's sub-graphs read from the enclosing scope (over-approximation: all inputs)."""
    names: set[str] = set()
    for sub in _subgraphs(node):
        for graph in _graphs_within(sub):
            for n in graph.node:
                names.update(n.input)
    return names


# --------------------------------------------------------------------------------------------
# Passes
# --------------------------------------------------------------------------------------------


class Pass:
    """One compilation step. Subclasses set `name` and implement `run(ctx)`."""

    name = "pass"

    def run(self, ctx: CompileContext) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class FunctionPass(Pass):
    """A pass made from a plain function `fn(ctx)`."""

    def __init__(self, fn: Callable[[CompileContext], None], name: str | None = None):
        self.fn = fn
        self.name = name or getattr(fn, "__name__", "function")

    def run(self, ctx: CompileContext) -> None:
        self.fn(ctx)

    def __repr__(self) -> str:
        return f"FunctionPass({self.name!r})"


class Pipeline:
    """An ordered list of passes. `Pipeline.default()` is memcc's standard pipeline.

    Supports `append`, `insert_before(name, pass)`, `insert_after(name, pass)`, `remove(name)`,
    `replace(name, pass)`, iteration and `len`.
    """

    def __init__(self, passes: Iterable[Pass] = ()):
        self.passes: list[Pass] = []
        for p in passes:
            self.append(p)

    @classmethod
    def default(cls) -> "Pipeline":
        from . import default_passes

        return cls(default_passes())

    def append(self, p: Pass) -> "Pipeline":
        if callable(p) and not isinstance(p, Pass):
            p = FunctionPass(p)
        if not isinstance(p, Pass):
            raise ConfigError(f"passes must be memcc.passes.Pass instances, got {p!r}")
        self.passes.append(p)
        return self

    def _index(self, name: str) -> int:
        for i, p in enumerate(self.passes):
            if p.name == name:
                return i
        raise KeyError(f"no pass named {name!r} in the pipeline ({', '.join(self.names())})")

    def names(self) -> list[str]:
        return [p.name for p in self.passes]

    def insert_before(self, name: str, p: Pass) -> "Pipeline":
        i = self._index(name)
        self.passes.insert(i, Pipeline([p]).passes[0])
        return self

    def insert_after(self, name: str, p: Pass) -> "Pipeline":
        i = self._index(name)
        self.passes.insert(i + 1, Pipeline([p]).passes[0])
        return self

    def remove(self, name: str) -> "Pipeline":
        del self.passes[self._index(name)]
        return self

    def replace(self, name: str, p: Pass) -> "Pipeline":
        self.passes[self._index(name)] = Pipeline([p]).passes[0]
        return self

    def __iter__(self) -> Iterator[Pass]:
        return iter(self.passes)

    def __len__(self) -> int:
        return len(self.passes)

    def __repr__(self) -> str:
        return f"Pipeline({self.passes!r})"

    def run(self, ctx: CompileContext) -> CompileContext:
        for p in self.passes:
            ctx.graph_cache.clear()
            p.run(ctx)
            ctx.report.passes.append(p.name)
        return ctx


# --------------------------------------------------------------------------------------------
# Helpers shared by the rewrite passes
# --------------------------------------------------------------------------------------------


def attr(node: onnx.NodeProto, name: str, default=None):
    """The value of the node's attribute `name`, or `default`."""
    for a in node.attribute:
        if a.name == name:
            v = helper.get_attribute_value(a)
            return v.decode("utf-8") if isinstance(v, bytes) else v
    return default


def sanitize(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.:/-]", "_", name)


def make_memristive_node(ctx: CompileContext, *, inputs: list[str], output: str, name: str,
                         **attributes) -> onnx.NodeProto:
    """A MemristiveMatMul node (domain ai.memcc); also adds the opset import."""
    ctx.ensure_memcc_opset()
    attrs = {k: v for k, v in attributes.items() if v is not None}
    while inputs and inputs[-1] == "":
        inputs = inputs[:-1]
    return helper.make_node(OP_TYPE, inputs, [output], name=name, domain=OP_DOMAIN, **attrs)


def replace_nodes(graph: onnx.GraphProto, new_nodes: list[onnx.NodeProto]) -> None:
    del graph.node[:]
    graph.node.extend(new_nodes)


FLOAT_TYPES = {onnx.TensorProto.FLOAT}


class RewritePass(Pass):
    """Base of the passes that turn one kind of node into MemristiveMatMul nodes.

    Subclasses set `op_types` and implement `rewrite(ctx, node, label, inits)`, which returns the
    nodes replacing `node` (in order), or a string: the reason the node stays digital (recorded in
    `ctx.report.skipped`). `label` is the node's name or a deterministic stand-in.
    """

    op_types: tuple[str, ...] = ()

    def run(self, ctx: CompileContext) -> None:
        # run on its own too (tests, custom drivers), after passes that did not clear it
        ctx.graph_cache.clear()
        inits = ctx.initializers()
        new_nodes: list[onnx.NodeProto] = []
        changed = False
        for index, node in enumerate(ctx.graph.node):
            if node.op_type in self.op_types and node.domain in ("", "ai.onnx"):
                label = ctx.node_label(node, index)
                result = self.rewrite(ctx, node, label, inits)
                if isinstance(result, str):
                    ctx.report.skipped.append(SkippedNode(label, node.op_type, result))
                    new_nodes.append(node)
                else:
                    new_nodes.extend(result)
                    changed = True
            else:
                new_nodes.append(node)
        if changed:
            replace_nodes(ctx.graph, new_nodes)
            ctx.graph_cache.clear()

    def rewrite(self, ctx: CompileContext, node: onnx.NodeProto, label: str,
                inits: dict) -> list[onnx.NodeProto] | str:  # pragma: no cover - abstract
        raise NotImplementedError

    # ---- helpers for subclasses --------------------------------------------------------------

    @staticmethod
    def float32_weight(ctx: CompileContext, name: str, inits: dict, what: str = "weight"):
        """(array, "") for a float32 constant, or (None, reason)."""
        t = inits.get(name)
        if t is None:
            return None, f"{what} {name!r} is not a constant"
        if t.data_type != onnx.TensorProto.FLOAT:
            tname = onnx.TensorProto.DataType.Name(t.data_type).lower()
            return None, f"{what} {name!r} is {tname}; only float32 layers are mapped"
        arr = numpy_helper.to_array(t)
        if not np.all(np.isfinite(arr)):
            return None, f"{what} {name!r} contains NaN or infinity"
        return arr, ""

    @staticmethod
    def activation_problem(ctx: CompileContext, name: str) -> str:
        """Reason an activation input cannot feed the op ("" if it can)."""
        t = ctx.elem_type(name)
        if t is not None and t != onnx.TensorProto.FLOAT:
            tname = onnx.TensorProto.DataType.Name(t).lower()
            return f"input {name!r} is {tname}; the op computes in float32"
        return ""

    @staticmethod
    def emit_layer(ctx: CompileContext, *, node: onnx.NodeProto, label: str, kind: str,
                   x: str, W: np.ndarray, bias: str, output: str,
                   op_attrs: dict | None = None) -> onnx.NodeProto:
        """Add the G initializer (`G = W[None]`, plain weights, D = W) and return the node.

        `MapWeights` later replaces G by conductances; the layer is recorded in `ctx.layers`.
        """
        K, N = W.shape
        op_attrs = {k: v for k, v in (op_attrs or {}).items() if v is not None}
        group = int(op_attrs.get("group", 1))
        gname = ctx.add_initializer(W.astype(np.float32)[None], f"{label}.G")
        node_name = node.name if node.name else ctx.unique_name(label)
        op = make_memristive_node(
            ctx,
            inputs=[x, gname, bias],
            output=output,
            name=node_name,
            weight_scale=1.0,
            **op_attrs,
        )
        ks = op_attrs.get("kernel_shape")
        ctx.layers.append(
            MappedLayer(
                node=node_name, source=label, op_type=node.op_type, kind=kind, K=K, N=N,
                group=group, weight=gname, bias=bias,
                kernel_shape=tuple(ks) if ks is not None else None,
            )
        )
        return op
