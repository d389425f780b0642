"""`memcc.compile`: map a model's Gemm/MatMul/Conv layers onto memristive crossbars.

    import memcc
    mem = memcc.compile("model.onnx", tile=(128, 128), adc_bits=8)
    mem, report = memcc.compiler.compile_with_report(
        model_proto, device="vteam", device_params={"r_on": "50:std=5:min=10"}, seed=1)
    print(report.summary())
    memcc.compiler.write_report(report, "report.json")   # and report.png: programming errors

The compilation is a `memcc.passes.Pipeline` of passes run on a private copy of the model (the
caller's ModelProto is never modified); see `memcc.passes` for the passes and how to compose
your own.
"""

from __future__ import annotations

import dataclasses
import os
from collections import Counter
from typing import Iterable, Union

import onnx

from memcc.errors import ConfigError, ModelLoadError, NothingToMapError


def _import_passes():
    """`memcc.passes`; in a source checkout (not installed) load the top-level `passes/` as it."""
    try:
        import memcc.passes as passes_module

        return passes_module
    except ModuleNotFoundError as exc:
        if exc.name != "memcc.passes":
            raise
    import importlib.util
    import sys
    from pathlib import Path

    folder = Path(__file__).resolve().parent.parent / "passes"
    spec = importlib.util.spec_from_file_location(
        "memcc.passes", folder / "__init__.py", submodule_search_locations=[str(folder)]
    )
    if spec is None or spec.loader is None:  # pragma: no cover
        raise ImportError("memcc.passes is not installed and no source tree passes/ was found")
    module = importlib.util.module_from_spec(spec)
    sys.modules["memcc.passes"] = module
    spec.loader.exec_module(module)
    import memcc

    memcc.passes = module
    return module


_passes = _import_passes()
CompileContext = _passes.CompileContext
CompileOptions = _passes.CompileOptions
CompileReport = _passes.CompileReport
Pass = _passes.Pass
Pipeline = _passes.Pipeline
default_passes = _passes.default_passes

ModelLike = Union[str, "os.PathLike[str]", bytes, onnx.ModelProto]


def _load(model: ModelLike) -> onnx.ModelProto:
    """The model as a ModelProto (the caller's object when one is given; never modified)."""
    try:
        from memcc.io import load_model
    except ImportError:  # pragma: no cover - memcc.io is part of the package
        load_model = _fallback_load
    return load_model(model)


def _fallback_load(model: ModelLike) -> onnx.ModelProto:  # pragma: no cover - see _load
    if isinstance(model, onnx.ModelProto):
        return model
    if isinstance(model, (bytes, bytearray)):
        try:
            return onnx.load_model_from_string(bytes(model))
        except Exception as exc:  # noqa: BLE001
            raise ModelLoadError(f"the model bytes are not an ONNX model: {exc}") from None
    if not isinstance(model, (str, os.PathLike)):
        raise ModelLoadError(f"cannot load a model from a {type(model).__name__}")
    if not os.path.isfile(model):
        raise ModelLoadError(f"{model}: no such file")
    try:
        return onnx.load(os.fspath(model))
    except Exception as exc:  # noqa: BLE001
        raise ModelLoadError(f"{model}: not an ONNX model ({str(exc).splitlines()[0]})") from None


def _pipeline(passes) -> Pipeline:
    if passes is None:
        return Pipeline(default_passes())
    if isinstance(passes, Pipeline):
        return passes
    if isinstance(passes, Pass) or not isinstance(passes, Iterable):
        raise ConfigError("passes must be a list of memcc.passes.Pass instances or a Pipeline")
    return Pipeline(passes)


def check_settings(*, passes=None, nonidealities=None, preflight: bool = True, **options):
    """Raise the ConfigError `compile` would raise for these settings, without a model.

    The setup part of `compile` (its keyword arguments less the model and `progress`): validates
    the options (naming an unknown one), builds the device model, checks the values the op reads
    in float32 (`_check_f32_settings`) and builds the pipeline with the non-idealities inserted.
    With `preflight` it also makes the checks `compile` makes later, once the model is loaded
    and mapped, as far as they need no model: the programming method and per-device parameters
    (a `CompileContext` of an empty model) and each non-ideality's `check` on that context (a
    `finite_states` list against the device's window, `nonlinear` needing a nonlinear I-V, ...).
    Nothing is mapped or programmed. Returns (validated `CompileOptions`, device model,
    `Pipeline`).
    """
    try:
        options = CompileOptions(**options).validated()
    except TypeError:
        known = sorted(f.name for f in dataclasses.fields(CompileOptions))
        unknown = sorted(set(options) - set(known))
        raise ConfigError(f"unknown compile option {unknown[0]!r}; known options: {', '.join(known)}") from None
    device_obj = options.make_device()
    _check_f32_settings(options, device_obj)
    pipeline = _pipeline(passes)
    extra = _passes.make_nonidealities(nonidealities)
    if nonidealities is not None:
        pipeline = _passes.with_nonidealities(pipeline, extra)
    if preflight:
        ctx = CompileContext(onnx.ModelProto(), options, device=device_obj)
        for nonideality in extra:
            if isinstance(nonideality, _passes.NonidealityPass):  # any Pass may be given as one
                nonideality.check(ctx)
    return options, device_obj, pipeline


def compile_with_report(
    model: ModelLike,
    *,
    passes=None,
    nonidealities=None,
    progress: bool | None = None,
    **options,
) -> tuple[onnx.ModelProto, CompileReport]:
    """Like `compile` (same keyword arguments), and also return the `CompileReport` (mapped
    layers, skipped nodes, notes, programming statistics; `report.as_dict()` is
    JSON-serialisable, `write_report` saves it)."""
    # No preflight: the passes make those checks themselves once the layers are mapped, and more
    # precisely (nonlinear's float32 bound on V_max depends on the largest K·G of the layers, so
    # on an empty model it is too loose), and a model that cannot be loaded or mapped keeps
    # failing for that first.
    options, device_obj, pipeline = check_settings(passes=passes, nonidealities=nonidealities,
                                                   preflight=False, **options)
    if progress is not None and not isinstance(progress, bool):
        raise ConfigError(f"progress must be True, False or None, got {progress!r}")

    source = _load(model)
    work = onnx.ModelProto()
    work.CopyFrom(source)
    ctx = CompileContext(work, options, progress=progress, device=device_obj)
    ctx.source = source
    pipeline.run(ctx)
    if not ctx.report.mapped:
        raise NothingToMapError(_nothing_to_map_message(ctx.report))
    _check_layers(ctx)
    _record_device(ctx.model, device_obj)
    return ctx.model, ctx.report


def _record_device(model: onnx.ModelProto, device) -> None:
    """Names the device model in the model's metadata: the op attributes carry only conductances
    and scales, and `memcc info` should say which device produced them."""
    from memcc.info import DEVICE_METADATA_KEY

    entry = next((p for p in model.metadata_props if p.key == DEVICE_METADATA_KEY), None)
    if entry is None:
        entry = model.metadata_props.add()
        entry.key = DEVICE_METADATA_KEY
    entry.value = str(getattr(device, "name", type(device).__name__))


def _check_f32_settings(options: CompileOptions, device) -> None:
    """ConfigError for settings the op cannot represent (`CompileOptions.validated` checks only
    signs): tile sizes beyond int64, and voltages, input ranges and nominal conductances that
    are not normal float32 numbers (they would reach the op as inf or 0). The same checks as
    `memcc.config` makes for flags and files, here for API callers and device parameters."""
    from memcc import config

    config.check_tile(options.tile)
    config.check_normal_f32(options.max_input_voltage, "max_input_voltage", "V")
    if options.input_range:
        config.check_normal_f32(options.input_range, "input_range")
    from memcc.devices import nominal_window

    try:
        r_on, r_off = nominal_window(device)
    except ValueError:  # per-device parameter arrays: CompileContext refuses them with its own message
        return
    name = getattr(device, "name", "?")
    config.check_window(r_on, r_off, f"device {name!r}: ")


def _check_layers(ctx) -> None:
    """ConfigError for a mapped layer the op would read as inf or 0, found only once the weights
    are mapped: weight_scale = w_max / (G_on - G_off) depends on the layer's largest weight, and
    with the ADC on the op quantizes raw tile currents, up to rows · f(V_max) · (G_on - G_off)
    (half that in the single scheme), which must stay finite in float32."""
    import math

    from onnx import helper

    from memcc import config

    nom = ctx.nominal_device
    window = 1.0 / float(nom.r_on) - 1.0 / float(nom.r_off)
    nodes = {n.name: n for n in ctx.graph.node}
    for rec in ctx.report.mapped:
        name = repr(rec.source or rec.node)
        scale = rec.weight_scale
        if scale is not None and not config.F32_MIN <= scale <= config.F32_MAX:
            raise ConfigError(
                f"layer {name}: weight_scale (largest |weight| / (1/r_on - 1/r_off), the window being "
                f"{window:g} S) is {scale:g} in float32, outside the normal range "
                f"[{config.F32_MIN:.4g}, {config.F32_MAX:.4g}] the op needs; choose r_on and r_off "
                "whose conductance window is closer to the size of the weights"
            )
        if not ctx.options.adc_bits:
            continue
        node = nodes.get(rec.node)
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute} if node is not None else {}
        v = float(attrs.get("max_input_voltage", ctx.options.max_input_voltage))
        iv_a, iv_b = float(attrs.get("iv_a", 0.0)), float(attrs.get("iv_b", 0.0))
        # sinh overflows a Python float past 710; capped there, the product becomes inf instead
        f_v = iv_a * math.sinh(min(iv_b * v, 710.0)) if iv_b > 0 else v
        rows = min(rec.tile_shape[0] or rec.K, rec.K)
        current = rows * f_v * window * (0.5 if rec.scheme == "single" else 1.0)
        if not current <= config.F32_MAX:
            raise ConfigError(
                f"layer {name}: with the ADC on, a tile's column current can reach {current:g} A "
                f"({rows} rows at {v:g} V on a {window:g} S window), beyond float32's largest "
                f"number {config.F32_MAX:.4g}; lower max_input_voltage or raise r_on"
            )


def compile(
    model: ModelLike,
    *,
    device="ideal",
    scheme: str = "double",
    tile=(0, 0),
    dac_bits: int = 0,
    adc_bits: int = 0,
    adc_overflow_rate: float = 0.0,
    max_input_voltage: float = 0.3,
    input_range: float = 0.0,
    r_on: float | None = None,
    r_off: float | None = None,
    device_params=None,
    programming: str | None = None,
    programming_options=None,
    d2d_std: float | None = None,
    seed: int = 0,
    passes=None,
    nonidealities=None,
    progress: bool | None = None,
) -> onnx.ModelProto:
    """Compile an ONNX model into a memristive-crossbar simulation; return the new ModelProto.

    Args:
        model: a path to an .onnx file, its bytes, or an `onnx.ModelProto` (never modified).
        device: a name from `memcc.devices.list_devices()` ("ideal", "vteam",
            "linear_ion_drift", "stanford_pku", "data_driven") or a `memcc.devices.DeviceModel`.
        scheme: "double" (differential pair of crossbars) or "single" (one crossbar plus a
            reference column).
        tile: crossbar size (rows, cols); 0 in a position: not split along that axis.
        dac_bits, adc_bits: 0 (continuous) or 2..24.
        adc_overflow_rate: fraction of a tile read allowed to overflow the ADC range, in [0, 1).
        max_input_voltage: largest word-line voltage (V), > 0.
        input_range: 0 (each input vector scaled by its own max |x|) or the fixed range mapped
            to max_input_voltage.
        r_on, r_off: override the device's resistance window (ohm); None: the device's default.
        device_params: the device's parameters, {name: value} or ["name=value", ...]; a value
            is a number, a word (e.g. window="joglekar"), a text form "50:std=10:min=1:max=90",
            a `memcc.devices.Distribution` or a {mean, std, min, max} table. Distributions
            (std > 0) are sampled once per device: device-to-device variability. Weights are
            mapped onto the nominal window (means of r_on/r_off).
        programming: how the target conductances are written into the devices: "naive"
            (SET/RESET pulses until within tolerance or the pulse budget is spent; devices that
            miss keep the state they reached) or "ideal" (set to target, clipped to each
            device's range). None: "naive" for the physical models, "ideal" for the ideal device
            (which supports only "ideal").
        programming_options: options of naive programming (`memcc.programming.program_naive`):
            tolerance (relative, default 0.05), max_pulses (200), set_voltage, reset_voltage,
            pulse_width, reset_pulse_width, initial, dt, adaptive, max_doublings (at most the
            model's default + 2), min_pulse_width (defaults: the model's PROGRAMMING_DEFAULTS),
            chunk_size, workers.
        d2d_std: device-to-device variability, the relative std of r_on and r_off across
            devices (clipped normal, sampled once per device) for whichever of the two is not set
            in device_params/r_on/r_off. None: the device's default (`D2D_STD`: 10 % for the
            physical models, 0 for ideal); 0: identical devices.
        seed: seed of the device instances (per layer, see `memcc.passes.program_devices`) and of
            `ctx.rng`; the same seed gives a bit-identical model, another seed other devices.
        passes: None for `memcc.passes.default_passes()`, or a list of `memcc.passes.Pass`
            (or a `Pipeline`) run in order instead.
        nonidealities: non-idealities of the programmed chip, inserted after the
            `program_devices` pass and applied in the order given (`memcc.passes.nonidealities`):
            a list of `memcc.passes.Pass` instances (e.g. `memcc.passes.FiniteStates(16)`), text
            specs ("finite_states:n=16", "faults:stuck_lrs=0.01:stuck_hrs=0.01:unformed=0.005",
            "endurance:cycles=1e6") or tables ({"name": "faults", "stuck_lrs": 0.01}). None or
            []: none (the plain compilation).
        progress: True/False to force the progress bar on/off; None: only when stderr is a
            terminal and the model is large.

    Raises:
        ModelLoadError: the model cannot be loaded. ConfigError: an option is invalid, or a
            value would not survive the op's number types (tile sizes beyond int64;
            conductances, voltages, input ranges and layers' weight_scale outside float32's
            normal range; with the ADC on, tile currents that overflow float32).
        NothingToMapError: no layer could be mapped (the message lists why nodes were skipped).

    Use `compile_with_report` to also get the `CompileReport` (and `write_report` to save it).
    """
    # Every parameter but the model is an option of compile_with_report; listing them again
    # here would be a second copy to keep in step.
    options = {k: v for k, v in locals().items() if k != "model"}
    compiled, _ = compile_with_report(model, **options)
    return compiled


def _nothing_to_map_message(report: CompileReport) -> str:
    msg = "nothing to map: the model has no Gemm, MatMul or Conv with a constant float32 weight"
    if report.skipped:
        reasons = Counter(s.reason for s in report.skipped)
        parts = [f"{n}× {r}" if n > 1 else r for r, n in reasons.most_common(3)]
        more = len(reasons) - 3
        msg += " (skipped: " + "; ".join(parts) + (f"; and {more} more" if more > 0 else "") + ")"
    return msg


def write_report(report: CompileReport, path, *, plot: bool = True, extra: dict | None = None):
    """Write `report.as_dict()` (plus `extra` keys) as JSON to `path`, and the histogram of the
    programming error (achieved vs target, `memcc.plots.plot_programming_error`) as a PNG next
    to it: `<stem>.png` (`<stem>.errors.png` when `path` itself ends in .png).

    Both files are written atomically (`memcc.io.atomic_output`: a temporary file in the same
    folder, renamed into place only when complete). The plot is made only when the report has
    programmed devices and `plot` is true. Returns (json path, png path or None) as
    `pathlib.Path`s. Raises MemccError when a file cannot be written.
    """
    import json
    from pathlib import Path

    from memcc.io import atomic_output

    path = Path(path)
    data = report.as_dict() if hasattr(report, "as_dict") else dict(report)
    if extra:
        data.update(dict(extra))
    text = json.dumps(_passes.base._jsonable(data), indent=2, allow_nan=False) + "\n"
    png = None
    if plot and getattr(report, "programmed", None):
        png = path.with_name(path.stem + (".errors.png" if path.suffix.lower() == ".png" else ".png"))
        result = programming_result(report)
        p = report.programming or {}
        title = f"programming error: {p.get('device', '?')} ({p.get('method', '?')}"
        title += f", tolerance {result.tolerance * 100:g} %)" if result.tolerance else ")"
        from memcc.plots import plot_programming_error

        with atomic_output(png, ".png") as tmp:
            plot_programming_error(result, tmp, title=title)
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path, png


def programming_result(report: CompileReport):
    """All programmed devices of a compilation as one `memcc.programming.ProgrammingResult` in
    relative units (targets 1, conductances 1 + relative error), for `memcc.plots`; None when no
    device was programmed."""
    import numpy as np

    from memcc.programming import ProgrammingResult

    layers = getattr(report, "programmed", None) or []
    if not layers:
        return None
    err = np.concatenate([d.errors for d in layers]).astype(np.float64)
    return ProgrammingResult(
        targets=np.ones_like(err), conductances=1.0 + err,
        pulses=np.concatenate([d.pulses for d in layers]),
        converged=np.concatenate([d.converged for d in layers]),
        out_of_range=np.concatenate([d.out_of_range for d in layers]),
        states=np.zeros(0), tolerance=float(layers[0].tolerance), method=layers[0].method,
        max_pulses=int((report.programming or {}).get("settings", {}).get("max_pulses", 0)),
    )
