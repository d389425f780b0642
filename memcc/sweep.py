"""`memcc sweep`: accuracy of a model on memristive crossbars over a grid of settings and seeds.

    from memcc.sweep import run_sweep

    if __name__ == "__main__":  # needed: the worker processes import this script again
        result = run_sweep("model.onnx", "fmnist", {"d2d-std": [0, 0.1, 0.2, 0.3]},
                           seeds=[0, 1, 2], fixed={"device": "vteam", "tile": "128x128"}, jobs=2)
        result.write_csv("results.csv")
        result.plot("results.png")
        print(result.summary())

The grid is the product of the varied settings' value lists × the seeds. Every point compiles
the model with `memcc.compile` (the fixed settings, the point's values, `seed=` the point's seed)
and measures its top-1 accuracy on the data set (`memcc.datasets`) with onnxruntime and memcc's
op library. The original model is evaluated once more, without memcc: the digital baseline.
Points run in worker processes (`jobs`, default min(2, CPUs); onnxruntime uses one intra-op
thread per worker when jobs > 1). A point's accuracy depends only on the settings and its seed,
so the same grid and seeds give the same numbers, serial or parallel. Workers are started with
multiprocessing's "spawn" method, which imports the calling script again in each of them: call
run_sweep under ``if __name__ == "__main__":`` (or with jobs=1); a sweep whose workers die while
starting fails with a MemccError saying so instead of waiting for them.

Before any evaluation, every point's settings go through the cheap part of `memcc.compile`
(`check_point`: options, device model, float32 limits, programming method, non-idealities), so
a bad combination fails at once, not after the baseline and the points before it. The model is
checked too (`check_model`): one input to feed, a float input type (the data is fed in it), not
already compiled. A model whose batch dimension is fixed (e.g. to 1) is evaluated in batches of
that size (the last one padded), whatever `batch` says; the result's `notes` say so.

Read noise (``read_noise``) is drawn by the op from a stream that counts its executions, so
with it on an accuracy depends on `batch` and `limit` too (other batches draw other noise):
compare points evaluated with the same batch size and samples.

Vary keys (`VARY_KEYS`) are compile keywords spelled with dashes (``d2d-std``, ``r-on``,
``r-off``, ``tile``, ``adc-bits``, ``dac-bits``, ...) plus:

- ``n-states``: finite conductance states, ``nonidealities=["finite_states:n=N", ...]`` (N levels
  spaced linearly over each device's own window; put before the fixed non-idealities).
- ``ratio``: R_off/R_on with R_on at the device's value (or the fixed ``r-on``): r_off =
  ratio · r_on. Unlike a fixed ``r-off`` (which `compile` takes as exact, identical for every
  device), r_on and the new r_off keep the device-to-device spread (``d2d_std``, default the device's),
  so that only the window changes along the axis (`_apply_ratio`: at small ratios the clip of
  both normals narrows from ±3 std so that every device keeps r_on < r_off).
- ``tolerance``, ``max-pulses``: options of naive programming.
"""

from __future__ import annotations

import contextlib
import csv
import itertools
import math
import os
import sys
import time
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from memcc.errors import ConfigError, MemccError

# --------------------------------------------------------------------------------------------
# Vary keys
# --------------------------------------------------------------------------------------------


def _num(text: Any, key: str, *, integer: bool = False, low: float | None = None,
         low_open: bool = False) -> float | int:
    if isinstance(text, bool):
        raise ConfigError(f"--vary {key}: {text!r} is not a number")
    try:
        value = float(text) if not isinstance(text, (int, float)) else text
    except (TypeError, ValueError):
        raise ConfigError(f"--vary {key}: {text!r} is not {'an integer' if integer else 'a number'}") from None
    if not math.isfinite(value):
        raise ConfigError(f"--vary {key}: {text!r} is not finite")
    if integer:
        if float(value) != int(value):
            raise ConfigError(f"--vary {key}: {text!r} is not an integer")
        value = int(value)
    if low is not None and (value <= low if low_open else value < low):
        raise ConfigError(f"--vary {key}: {text!r} must be {'>' if low_open else '>='} {low:g}")
    return value


def _config_value(key: str):
    """A parser that checks the value with memcc.config's parser of the compile keyword."""
    def parse(text, vary_key):
        from memcc import config as cfg

        try:
            return cfg.PARSERS[key](text.strip() if isinstance(text, str) else text, key)
        except ConfigError as exc:
            raise ConfigError(f"--vary {vary_key}: {exc}") from None
    return parse


@dataclass(frozen=True)
class VaryKey:
    name: str      # CLI spelling, e.g. "d2d-std"
    column: str    # CSV column, e.g. "d2d_std"
    label: str     # axis label
    parse: Any     # (text, key) -> value
    log: bool = False  # plot on a log axis (when the values allow)
    short: str = ""    # legend name; default: the column

    @property
    def legend(self) -> str:
        return self.short or self.column


def _float_key(name, label, low=0.0, low_open=False, log=False, short=""):
    return VaryKey(name, name.replace("-", "_"), label,
                   lambda t, k, low=low, lo=low_open: _num(t, k, low=low, low_open=lo), log, short)


VARY_KEYS: dict[str, VaryKey] = {
    k.name: k
    for k in [
        _float_key("d2d-std", "device-to-device variation (relative std of R_on and R_off)", short="d2d std"),
        _float_key("r-on", "R_on (Ω)", low_open=True, log=True, short="R_on"),
        _float_key("r-off", "R_off (Ω)", low_open=True, log=True, short="R_off"),
        _float_key("ratio", "R_off / R_on", low=1.0, low_open=True, log=True, short="R_off/R_on"),
        VaryKey("n-states", "n_states", "finite conductance states per device",
                lambda t, k: _num(t, k, integer=True, low=2), True, "states"),
        VaryKey("tile", "tile", "crossbar tile (rows × columns)", _config_value("tile")),
        VaryKey("adc-bits", "adc_bits", "ADC resolution (bits)", _config_value("adc_bits")),
        VaryKey("dac-bits", "dac_bits", "DAC resolution (bits)", _config_value("dac_bits")),
        VaryKey("adc-overflow-rate", "adc_overflow_rate", "ADC overflow rate", _config_value("adc_overflow_rate")),
        VaryKey("max-input-voltage", "max_input_voltage", "largest word-line voltage (V)",
                _config_value("max_input_voltage")),
        VaryKey("input-range", "input_range", "input range", _config_value("input_range")),
        VaryKey("scheme", "scheme", "mapping scheme", _config_value("scheme")),
        VaryKey("device", "device", "device model", _config_value("device")),
        VaryKey("programming", "programming", "programming", _config_value("programming")),
        _float_key("tolerance", "programming tolerance (relative)", low_open=True),
        VaryKey("max-pulses", "max_pulses", "programming pulse budget",
                lambda t, k: _num(t, k, integer=True, low=1)),
    ]
}
#: other spellings accepted for vary keys
VARY_ALIASES = {"d2d": "d2d-std", "states": "n-states", "finite-states": "n-states",
                "r-ratio": "ratio", "on-off-ratio": "ratio", "roff-ron": "ratio"}


def vary_key(name: str) -> VaryKey:
    """The `VaryKey` called `name` (dashes or underscores; ConfigError naming the known keys)."""
    key = str(name).strip().lower().replace("_", "-")
    key = VARY_ALIASES.get(key, key)
    if key not in VARY_KEYS:
        import difflib

        close = difflib.get_close_matches(key, list(VARY_KEYS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"--vary: unknown setting {str(name).strip()!r}{hint}; known: {', '.join(VARY_KEYS)}")
    return VARY_KEYS[key]


def parse_vary(spec: str) -> tuple[VaryKey, list]:
    """`KEY=V1,V2,...` → (VaryKey, parsed values in the given order)."""
    if not isinstance(spec, str) or "=" not in spec:
        raise ConfigError(f"--vary {spec!r}: expected KEY=V1,V2,... such as d2d-std=0,0.1,0.2")
    name, _, values = spec.partition("=")
    key = vary_key(name)
    items = [v.strip() for v in values.split(",")]
    if not values.strip() or any(not v for v in items):
        raise ConfigError(f"--vary {spec!r}: expected a comma-separated list of values after {name.strip()}=")
    return key, check_values(key, items)


def check_values(key: VaryKey, values: Sequence) -> list:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
        raise ConfigError(f"--vary {key.name}: expected a non-empty list of values, got {values!r}")
    parsed = [key.parse(v, key.name) for v in values]
    seen = set()
    for v in parsed:
        if v in seen:
            raise ConfigError(f"--vary {key.name}: value {format_value(v)} is given twice")
        seen.add(v)
    return parsed


def parse_grid(vary: Mapping[str, Sequence] | Sequence[str]) -> dict[str, list]:
    """{key name: values} from `--vary` strings or a mapping; keys in order, each once."""
    grid: dict[str, list] = {}
    if isinstance(vary, Mapping):
        pairs = [(vary_key(k), check_values(vary_key(k), list(v) if not isinstance(v, str) else v))
                 for k, v in vary.items()]
    else:
        if isinstance(vary, str):
            vary = [vary]
        pairs = [parse_vary(s) for s in vary]
    for key, values in pairs:
        if key.name in grid:
            raise ConfigError(f"--vary {key.name} is given twice; list all its values in one --vary")
        grid[key.name] = values
    if not grid:
        raise ConfigError("nothing to sweep: give at least one --vary KEY=V1,V2,...")
    if "ratio" in grid and ("r-off" in grid):
        raise ConfigError("--vary ratio and --vary r-off both set R_off; vary one of them")
    return grid


def parse_seeds(seeds: int | None = None, seed_list: str | Sequence[int] | None = None) -> list[int]:
    """`--seeds N` (0..N-1) or `--seed-list 0,1,2`; default 3 seeds."""
    if seeds is not None and seed_list is not None:
        raise ConfigError("give either --seeds N or --seed-list, not both")
    if seed_list is not None:
        items = seed_list.split(",") if isinstance(seed_list, str) else list(seed_list)
        out = []
        for s in items:
            try:
                v = int(str(s).strip())
            except ValueError:
                raise ConfigError(f"--seed-list: {str(s).strip()!r} is not an integer") from None
            if v < 0:
                raise ConfigError(f"--seed-list: seeds must be >= 0, got {v}")
            if v in out:
                raise ConfigError(f"--seed-list: seed {v} is given twice")
            out.append(v)
        if not out:
            raise ConfigError("--seed-list: no seeds given")
        return out
    n = 3 if seeds is None else seeds
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"--seeds must be a positive integer, got {n!r}")
    return list(range(n))


def format_value(value) -> str:
    if isinstance(value, tuple):
        return "none" if value == (0, 0) else f"{value[0]}x{value[1]}"
    if isinstance(value, float):
        return f"{value:.10g}"
    return str(value)


# --------------------------------------------------------------------------------------------
# Compile settings of a point
# --------------------------------------------------------------------------------------------

#: fixed settings that conflict with a vary key (the key sets them)
_CONFLICTS = {"ratio": ("r_off",), "r-off": ("r_off",), "r-on": ("r_on",), "d2d-std": ("d2d_std",),
              "tile": ("tile",), "adc-bits": ("adc_bits",), "dac-bits": ("dac_bits",),
              "adc-overflow-rate": ("adc_overflow_rate",), "max-input-voltage": ("max_input_voltage",),
              "input-range": ("input_range",), "scheme": ("scheme",), "device": ("device",),
              "programming": ("programming",)}


def _check_conflicts(grid, fixed, file_settings, base) -> None:
    """A varied setting must not also be fixed (by a flag, the config file or a parameter)."""
    given = {**(file_settings or {}), **{str(k).replace("-", "_"): v for k, v in (fixed or {}).items()}}
    for key in grid:
        for conflict in _CONFLICTS.get(key, ()):
            if given.get(conflict) is not None:
                raise ConfigError(f"--vary {key} and a fixed {conflict.replace('_', '-')} both set {conflict}; drop one")
    params = base.get("device_params") or {}
    for key, param in (("r-on", "r_on"), ("r-off", "r_off"), ("ratio", "r_off")):
        if key in grid and param in params:
            raise ConfigError(f"--vary {key} and the device parameter {param} both set {param}; drop one")
    if "n-states" in grid:
        for n in base.get("nonidealities") or []:
            if isinstance(n, Mapping) and n.get("name") == "finite_states":
                raise ConfigError("--vary n-states and a fixed finite_states non-ideality both set the states; drop one")
    opts = base.get("programming_options") or {}
    for key in ("tolerance", "max-pulses"):
        if key in grid and key.replace("-", "_") in opts:
            raise ConfigError(f"--vary {key} and a fixed {key} both set it; drop one")


def resolve_fixed(fixed: Mapping[str, Any] | None, file_settings: Mapping[str, Any] | None = None) -> dict:
    """Validated compile settings (memcc.config.resolve) from a config file's and the flags'."""
    from memcc import config as cfg

    fixed = dict(fixed or {})
    if "seed" in {str(k).replace("-", "_") for k in fixed}:
        raise ConfigError("the sweep sets the seed of every point; use --seeds or --seed-list")
    return cfg.resolve(file_settings, fixed)


def point_settings(base: Mapping[str, Any], point: Mapping[str, Any], seed: int) -> dict:
    """memcc.compile keyword arguments for one grid point (base: `resolve_fixed`'s result)."""
    from memcc import config as cfg

    s = dict(base)
    s["device_params"] = dict(base.get("device_params") or {}) or None
    s["programming_options"] = dict(base.get("programming_options") or {}) or None
    nonid = list(base.get("nonidealities") or [])
    ratio = None
    for name, value in point.items():
        if name == "n-states":
            nonid = [{"name": "finite_states", "n_states": int(value)}] + nonid
        elif name == "ratio":
            ratio = float(value)
        elif name in ("tolerance", "max-pulses"):
            opts = dict(s["programming_options"] or {})
            opts[name.replace("-", "_")] = value
            s["programming_options"] = opts
        else:
            s[VARY_KEYS[name].column] = value
    s["nonidealities"] = nonid or None
    if ratio is not None:
        _apply_ratio(s, ratio)
    s["seed"] = int(seed)
    # One more pass through the validators: the combination must be valid too.
    overrides = {k: v for k, v in s.items() if k not in ("device_params",)}
    checked = cfg.resolve({}, overrides)
    checked["device_params"] = s["device_params"]
    return checked


def check_point(settings: Mapping[str, Any]) -> None:
    """Raise the ConfigError `memcc.compile` would raise for `settings`, without compiling:
    `memcc.compiler.check_settings` with its preflight (options, device model, float32 limits,
    programming method, each non-ideality's check against the device). No weights are mapped
    and no device is programmed."""
    from memcc import compiler

    compiler.check_settings(**settings)


def _grid_tasks(base: Mapping[str, Any], points: list[dict], keys: list[str],
                seeds: list[int]) -> tuple[list, list]:
    """(tasks, meta) of the crossbar points, each point's settings checked by `check_point`."""
    tasks, meta = [], []
    for point in points:
        label = _label(point, keys)
        try:
            checked = False
            for seed in seeds:
                settings = point_settings(base, point, seed)
                if not checked:  # the seed changes no setting that can be invalid
                    check_point(settings)
                    checked = True
                tasks.append((len(tasks) + 1, settings, f"{label}, seed {seed}"))
                meta.append((point, seed))
        except MemccError as exc:
            raise ConfigError(f"sweep point {label}: {exc}") from None
    return tasks, meta


def _apply_ratio(s: dict, ratio: float) -> None:
    """r_off = ratio · r_on (nominal), with the point's device-to-device spread.

    Both resistances become clipped normals of relative std d2d (as `d2d_std` makes them), clipped
    at ±k std with k = 3 (the compiler's clip) or less where the two ranges would otherwise
    overlap (a device needs r_on < r_off): k = 0.99 (ratio − 1) / ((ratio + 1) d2d). A fixed r_on
    (a number) keeps no spread; an r_on distribution given as a device parameter is kept and
    r_off's lower clip is raised above its maximum where needed.
    """
    from memcc.devices import get_device, nominal_window
    from memcc.devices.parameters import Distribution

    params = dict(s.get("device_params") or {})
    if "r_off" in params or s.get("r_off") is not None:
        raise ConfigError("--vary ratio sets R_off; do not also fix r-off (flag or device parameter)")
    if s.get("r_on") is not None:
        params["r_on"] = s["r_on"]
        s["r_on"] = None
    device = get_device(s["device"], **params)
    r_on, _ = nominal_window(device)
    d2d = s.get("d2d_std")
    if d2d is None:
        d2d = float(getattr(device, "D2D_STD", 0.0))
    mean = ratio * r_on
    user_r_on = params.get("r_on")
    if d2d == 0:
        params["r_off"] = mean
    elif isinstance(user_r_on, Distribution) and not user_r_on.is_fixed:
        lo = max(mean * (1 - 3 * d2d), 1e-3 * mean)
        hi = mean * (1 + 3 * d2d)
        if lo <= user_r_on.max:
            lo = min(user_r_on.max * 1.01, 0.5 * (mean + hi))
        params["r_off"] = Distribution(mean, d2d * mean, lo, hi)
    elif user_r_on is not None:  # a fixed r_on: only r_off spreads
        k = min(3.0, 0.99 * (ratio - 1) / d2d)
        params["r_off"] = Distribution(mean, d2d * mean, max(mean * (1 - k * d2d), 1e-3 * mean), mean * (1 + k * d2d))
    else:
        k = min(3.0, 0.99 * (ratio - 1) / ((ratio + 1) * d2d))
        # Inside the model's own limits too (Stanford-PKU: r_on above its zero-gap resistance),
        # as `with_d2d_std` keeps them, or a wide spread samples devices the model refuses.
        for name, m in (("r_on", r_on), ("r_off", mean)):
            low, high = device.clip_bounds(name, m, m * (1 - k * d2d), m * (1 + k * d2d))
            params[name] = Distribution(m, d2d * m, low, high)
    s["device_params"] = params


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------


def choose_output(model, name: str | None = None) -> tuple[int, str, bool]:
    """(index, name, is_scores) of the model output the accuracy is taken from.

    `name` given: that output. Otherwise the first float output (class scores: logits or
    probabilities; the prediction is its argmax over the last axis); with none, the first
    integer output (predicted labels, e.g. a classifier's "label").
    """
    import onnx

    outputs = list(model.graph.output)
    floats = (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16)
    ints = (onnx.TensorProto.INT64, onnx.TensorProto.INT32)

    def kind(o):
        return o.type.tensor_type.elem_type if o.type.HasField("tensor_type") else None

    if name is not None:
        for i, o in enumerate(outputs):
            if o.name == name:
                if kind(o) in floats:
                    return i, o.name, True
                if kind(o) in ints:
                    return i, o.name, False
                raise ConfigError(f"model output {name!r} is not a tensor of class scores or labels")
        raise ConfigError(
            f"the model has no output {name!r}; its outputs are: {', '.join(o.name for o in outputs)}"
        )
    for i, o in enumerate(outputs):
        if kind(o) in floats:
            return i, o.name, True
    for i, o in enumerate(outputs):
        if kind(o) in ints:
            return i, o.name, False
    raise ConfigError("the model has no float (class scores) or integer (labels) output to score")


@dataclass(frozen=True)
class ModelInput:
    """The graph input the data set is fed into."""

    name: str
    dtype: Any            # numpy dtype of the samples (the input's element type)
    batch: int | None     # the batch size fixed by the model (its first dimension); None: free


#: float element types the samples can be fed as (the data sets hold float32)
_FLOAT_INPUTS = ("FLOAT", "DOUBLE", "FLOAT16")


def check_model(model, what: str = "the model") -> ModelInput:
    """The input to feed; ConfigError when `model` is not an original model with one float input."""
    import onnx

    from memcc import OP_DOMAIN, datasets

    compiled = sum(1 for n in model.graph.node if n.domain == OP_DOMAIN)
    if compiled:
        raise ConfigError(f"{what} is already compiled ({compiled} {OP_DOMAIN} node{'s' if compiled > 1 else ''}); "
                          "memcc sweep compiles the original model itself: give that one")
    required = datasets.feed_inputs(model, what)
    if len(required) > 1:
        names = ", ".join(repr(i.name) for i in required)
        raise ConfigError(f"{what} has {len(required)} inputs to feed ({names}); memcc sweep feeds the data "
                          f"set into one, so {required[1].name!r} needs a default value (an initializer)")
    first = required[0]
    if not first.type.HasField("tensor_type"):
        raise ConfigError(f"{what}'s input {first.name!r} is not a tensor")
    elem = first.type.tensor_type.elem_type
    if onnx.TensorProto.DataType.Name(elem) not in _FLOAT_INPUTS:
        raise ConfigError(f"{what}'s input {first.name!r} takes {onnx.TensorProto.DataType.Name(elem).lower()} "
                          "values; memcc sweep feeds floating-point samples (float, double or float16)")
    dims = first.type.tensor_type.shape.dim
    batch = dims[0].dim_value if len(dims) and dims[0].HasField("dim_value") and dims[0].dim_value > 0 else None
    return ModelInput(first.name, onnx.helper.tensor_dtype_to_np_dtype(elem), batch)


def predictions(sess, x: np.ndarray, output: int, scores: bool, batch: int,
                name: str | None = None, pad: bool = False) -> np.ndarray:
    """Predicted labels of `x`, `batch` samples per run (`pad`: fill the last run up to `batch`
    with zeros, for a model whose batch size is fixed; the padding's predictions are dropped)."""
    name = name or sess.get_inputs()[0].name
    out = []
    for start in range(0, len(x), batch):
        chunk = x[start : start + batch]
        n = len(chunk)
        if pad and n < batch:
            chunk = np.concatenate([chunk, np.zeros((batch - n,) + chunk.shape[1:], chunk.dtype)])
        y = np.asarray(sess.run(None, {name: chunk})[output])
        if scores:
            if y.ndim < 2:
                raise MemccError(f"the scored output has shape {list(y.shape)}; expected [batch, classes]")
            y = y.reshape(len(y), -1).argmax(axis=1)
        out.append(y.reshape(-1)[:n])
    return np.concatenate(out)


@dataclass
class _State:
    model: Any
    x: np.ndarray
    y: np.ndarray
    output: int
    scores: bool
    batch: int
    threads: int  # onnxruntime intra-op threads; 0: its default
    input_name: str
    pad: bool  # the model fixes the batch size: pad the last batch


_STATE: _State | None = None


def _options(threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    return opts


def _init_worker(model_bytes: bytes, x, y, output, scores, batch, threads, input_name, pad) -> None:
    global _STATE
    import onnx

    _STATE = _State(onnx.load_model_from_string(model_bytes), x, y, output, scores, batch, threads,
                    input_name, pad)


def _init_pool_worker(init_path: str) -> None:
    """A pool worker's start: the state from the file `_run_parallel` wrote; SIGINT ignored.

    The state travels in a file, not as initargs: multiprocessing writes a spawned process's
    arguments into a pipe whose other end the parent itself holds open until the write is
    done, so arguments beyond the pipe's buffer (64 KiB) hang the parent forever when the child
    dies before reading them (an unguarded script). Ctrl-C reaches the whole process group;
    the parent alone handles it and terminates the workers.
    """
    import pickle
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with open(init_path, "rb") as f:
        _init_worker(*pickle.load(f))


def _evaluate(task) -> tuple[int, float, int, float]:
    """(index, accuracy, n_samples, seconds) of one task: (index, settings or None, label)."""
    index, settings, label = task
    st = _STATE
    assert st is not None
    t0 = time.perf_counter()
    try:
        if settings is None:  # the digital baseline: the original model, plain onnxruntime
            import onnxruntime as ort

            sess = ort.InferenceSession(st.model.SerializeToString(), _options(st.threads),
                                        providers=["CPUExecutionProvider"])
        else:
            from memcc import compiler, runtime

            compiled = compiler.compile(st.model, progress=False, **settings)
            sess = runtime.session(compiled, sess_options=_options(st.threads))
        pred = predictions(sess, st.x, st.output, st.scores, st.batch, st.input_name, st.pad)
    except MemccError as exc:
        raise MemccError(f"sweep point {label}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - onnxruntime's errors: one line, naming the point
        from memcc import runtime

        if not runtime._is_ort_error(exc):
            raise
        raise MemccError(f"sweep point {label}: onnxruntime: {runtime._one_line(exc)}") from None
    correct = int(np.count_nonzero(pred == st.y))
    return index, correct / len(st.y), len(st.y), time.perf_counter() - t0


# --------------------------------------------------------------------------------------------
# The sweep
# --------------------------------------------------------------------------------------------


@dataclass
class SweepResult:
    """The grid's results: `rows` (one per point, grid order: keys, then seeds), `baseline`."""

    keys: list[str]                      # vary key names, e.g. ["d2d-std"]
    rows: list[dict]                     # {"values": {key: value}, "seed", "accuracy", "n_samples", "elapsed"}
    baseline: dict                       # {"accuracy", "n_samples", "elapsed"}
    model_name: str = ""
    data_name: str = ""
    fixed: dict = field(default_factory=dict)
    output_name: str = ""
    notes: list = field(default_factory=list)  # how the evaluation departed from the request

    # -- tables --------------------------------------------------------------------------
    def columns(self) -> list[str]:
        return ["model"] + [VARY_KEYS[k].column for k in self.keys] + ["seed", "accuracy", "n_samples", "elapsed_s"]

    def csv_rows(self) -> list[list[str]]:
        blank = [""] * len(self.keys)
        b = self.baseline
        rows = [["digital"] + blank + ["", f"{b['accuracy']:.6f}", str(b["n_samples"]), f"{b['elapsed']:.2f}"]]
        for r in self.rows:
            rows.append(["crossbar"] + [format_value(r["values"][k]) for k in self.keys]
                        + [str(r["seed"]), f"{r['accuracy']:.6f}", str(r["n_samples"]), f"{r['elapsed']:.2f}"])
        return rows

    def write_csv(self, path) -> Path:
        from memcc.io import atomic_output

        path = Path(path)
        with atomic_output(path) as tmp:
            with open(tmp, "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(self.columns())
                w.writerows(self.csv_rows())
        return path

    def groups(self) -> list[tuple[dict, list[float]]]:
        """[(values, [accuracy per seed])] in grid order."""
        out: dict[tuple, tuple[dict, list]] = {}
        for r in self.rows:
            k = tuple(r["values"][key] for key in self.keys)
            out.setdefault(k, (r["values"], []))[1].append(r["accuracy"])
        return list(out.values())

    def summary(self) -> str:
        """A text table: per setting, mean ± std, min and max accuracy over the seeds."""
        head = [VARY_KEYS[k].column for k in self.keys] + ["seeds", "mean", "std", "min", "max"]
        lines = [head]
        for values, accs in self.groups():
            a = np.asarray(accs) * 100
            lines.append([format_value(values[k]) for k in self.keys] + [
                str(len(a)), f"{a.mean():.2f}%", f"{a.std():.2f}%", f"{a.min():.2f}%", f"{a.max():.2f}%"])
        widths = [max(len(row[i]) for row in lines) for i in range(len(head))]
        text = ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in lines]
        text.append(f"digital baseline (original model, onnxruntime): {self.baseline['accuracy']:.2%} "
                    f"on {self.baseline['n_samples']:,} samples")
        text += [f"note: {n}" for n in self.notes]
        return "\n".join(text)

    def markdown(self) -> str:
        """The summary as a markdown table (accuracy in %, mean ± std [min–max] over seeds)."""
        cols = [VARY_KEYS[k].column for k in self.keys]
        lines = ["| " + " | ".join(cols + ["accuracy (mean ± std)", "min – max", "seeds"]) + " |",
                 "|" + "---|" * (len(cols) + 3)]
        for values, accs in self.groups():
            a = np.asarray(accs) * 100
            lines.append("| " + " | ".join([format_value(values[k]) for k in self.keys] + [
                f"{a.mean():.2f} ± {a.std():.2f}", f"{a.min():.2f} – {a.max():.2f}", str(len(a))]) + " |")
        lines.append("| digital | " + " | " * (len(cols) - 1)
                     + f"{self.baseline['accuracy'] * 100:.2f} | | |")
        return "\n".join(lines)

    # -- plot ----------------------------------------------------------------------------
    def plot(self, path, title: str | None = None) -> Path:
        return plot_sweep(self, path, title=title)


def _label(values: Mapping, keys: Sequence[str]) -> str:
    return ", ".join(f"{VARY_KEYS[k].column}={format_value(values[k])}" for k in keys)


def run_sweep(
    model,
    data,
    vary: Mapping[str, Sequence] | Sequence[str],
    *,
    seeds: Sequence[int] | int = 3,
    fixed: Mapping[str, Any] | None = None,
    file_settings: Mapping[str, Any] | None = None,
    split: str = "test",
    limit: int | None = None,
    jobs: int | None = None,
    batch: int = 500,
    output_name: str | None = None,
    progress: bool | None = None,
) -> SweepResult:
    """Compile and evaluate the grid `vary` × `seeds`; see the module docstring.

    model: path, bytes or ModelProto (the original model). data: a `memcc.datasets` spec
    ("fmnist", "digits", "npz:PATH") or a `Dataset`. vary: {"d2d-std": [0, 0.1], ...} or
    ["d2d-std=0,0.1", ...]. seeds: a list of seeds, or a count N (seeds 0..N-1). fixed: compile
    settings shared by every point (memcc.compile keywords or `memcc compile` flag names; the
    values as a TOML file or the flags would give them). jobs: worker processes (default
    min(2, CPUs); 1: in this process). batch: samples per onnxruntime run (a model that fixes its
    batch size gets that size). progress: True: a tqdm bar over the runs (points + baseline);
    False: nothing; None: the bar on a terminal, else one line per finished run on stderr.

    With jobs > 1 the workers are started with multiprocessing's "spawn" method, which imports
    the calling script again in each worker: as with any multiprocessing code, call run_sweep
    from a script under ``if __name__ == "__main__":`` (or use jobs=1).
    """
    from memcc import datasets
    from memcc.io import load_model

    grid = parse_grid(vary)
    seed_list = parse_seeds(seeds) if isinstance(seeds, int) and not isinstance(seeds, bool) else parse_seeds(seed_list=seeds)
    base = resolve_fixed(fixed, file_settings)
    _check_conflicts(grid, fixed, file_settings, base)
    if jobs is None:
        jobs = min(2, os.cpu_count() or 1)
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ConfigError(f"--jobs must be a positive integer, got {jobs!r}")
    if jobs > 1:
        _check_not_a_starting_worker()
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ConfigError(f"--batch-size must be a positive integer, got {batch!r}")
    if progress is not None and not isinstance(progress, bool):
        raise ConfigError(f"progress must be True, False or None, got {progress!r}")

    proto = load_model(model)
    name = model if isinstance(model, (str, os.PathLike)) else (proto.graph.name or "model")
    model_name = Path(name).name if isinstance(name, (str, os.PathLike)) else str(name)
    feed = check_model(proto, f"model {model_name!r}")
    out_index, out_name, scores = choose_output(proto, output_name)

    keys = list(grid)
    points = [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))]
    # Every point's settings are checked here, before the data is loaded and any work starts.
    point_tasks, meta = _grid_tasks(base, points, keys, seed_list)
    tasks = [(0, None, "digital baseline")] + point_tasks

    ds = data if isinstance(data, datasets.Dataset) else datasets.load_dataset(data, split=split, limit=limit)
    if isinstance(data, datasets.Dataset) and limit is not None:
        ds = datasets.Dataset(ds.name, ds.x[:limit], ds.y[:limit], ds.split, ds.description, ds.meta)
    if len(ds) == 0:
        raise ConfigError(f"data set {ds.name!r} holds no samples")
    x = ds.for_model(proto).astype(feed.dtype, copy=False)
    notes = []
    if feed.batch is not None and feed.batch != batch:
        notes.append(f"the model's batch size is fixed to {feed.batch}: evaluated {feed.batch} "
                     f"sample{'s' if feed.batch > 1 else ''} per run, not {batch}")
        batch = feed.batch

    from memcc.runtime import library_path

    library_path()  # fail before any work when the op library is missing
    jobs = min(jobs, len(tasks))
    threads = 1 if jobs > 1 else 0
    init = (proto.SerializeToString(), x, ds.y, out_index, scores, batch, threads,
            feed.name, feed.batch is not None)
    results: dict[int, tuple] = {}
    # The notes are not printed here: they qualify the results, so they come with them, in
    # `summary()` (which the CLI prints) and `SweepResult.notes`. Printed at the start too, they
    # would show twice where stderr and stdout share a terminal or log, the first copy scrolled
    # away under the progress bar or lines.
    report = _Progress(progress, len(tasks), len(point_tasks))
    try:
        if jobs == 1:
            global _STATE
            saved = _STATE
            try:
                _init_worker(*init)
                for task in tasks:
                    r = _evaluate(task)
                    results[r[0]] = r
                    report.done(task[2], r)
            finally:
                _STATE = saved
        else:
            _run_parallel(tasks, init, jobs, results, report)
    finally:
        report.close()

    base_r = results[0]
    rows = []
    for (point, seed), i in zip(meta, range(1, len(tasks))):
        _, acc, n, sec = results[i]
        rows.append({"values": point, "seed": seed, "accuracy": acc, "n_samples": n, "elapsed": sec})
    return SweepResult(keys, rows, {"accuracy": base_r[1], "n_samples": base_r[2], "elapsed": base_r[3]},
                       model_name=model_name, data_name=ds.name, fixed=_describe_fixed(base),
                       output_name=out_name, notes=notes)


class _Progress:
    """Progress on stderr: a tqdm bar on a terminal, else one line per finished run (a log
    file or CI would otherwise show nothing for the length of the sweep). Counts runs: the
    crossbar points and the digital baseline."""

    def __init__(self, progress: bool | None, total: int, points: int):
        from tqdm.auto import tqdm

        if progress is None:
            progress = sys.stderr.isatty()
            self.lines = not progress
        else:
            self.lines = False
        self.total = total
        self.count = 0
        desc = f"memcc sweep ({points} point{'s' if points != 1 else ''} + baseline)"
        self.bar = tqdm(total=total, desc=desc, unit="run", disable=not progress, file=sys.stderr)

    def done(self, label: str, result) -> None:
        self.count += 1
        self.bar.update(1)
        if self.lines:
            width = len(str(self.total))
            print(f"memcc sweep: {self.count:>{width}}/{self.total} runs, {label}: {result[1]:.2%} "
                  f"({result[3]:.1f} s)", file=sys.stderr, flush=True)

    def close(self) -> None:
        self.bar.close()


class WorkersFailedToStart(MemccError):
    """The sweep's worker processes died before evaluating anything."""


def _run_parallel(tasks, init, jobs, results, report) -> None:
    import multiprocessing
    import pickle
    import tempfile
    from concurrent.futures.process import BrokenProcessPool

    # spawn: a fresh interpreter per worker (forking a process that has onnxruntime's thread
    # pools is not safe). One BLAS thread per worker: the workers are the parallelism.
    env_before = {k: os.environ.get(k) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}
    for k in env_before:
        os.environ.setdefault(k, "1")
    ctx = multiprocessing.get_context("spawn")
    labels = {t[0]: t[2] for t in tasks}
    sigterm: list = []
    try:
        with _noting_sigterm(sigterm), tempfile.TemporaryDirectory(prefix="memcc-sweep-") as folder:
            init_path = os.path.join(folder, "state.pickle")  # see _init_pool_worker for why
            with open(init_path, "wb") as f:
                pickle.dump(init, f, protocol=pickle.HIGHEST_PROTOCOL)
            pool = ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_init_pool_worker,
                                       initargs=(init_path,))
            try:
                # Baseline first, then the points; the expensive ones are spread by the pool's queue.
                pending = {pool.submit(_evaluate, t) for t in tasks}
                while pending:
                    done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                    for fut in done:
                        r = fut.result()  # re-raises a worker's error here
                        results[r[0]] = r
                        report.done(labels[r[0]], r)
            except BrokenProcessPool:
                # SIGTERM to the whole process group kills the workers too, and their deaths can
                # be seen here a moment before the parent's own signal arrives: wait that moment,
                # in which the handler runs (the CLI's raises `Terminated` out of this sleep).
                time.sleep(_SIGTERM_GRACE_S)
                raise _broken_pool_error(bool(results), sigterm) from None
            except BaseException:
                # An error, Ctrl-C or SIGTERM: stop the running points now rather than wait
                # for them, and leave no worker behind.
                _terminate_workers(pool)
                raise
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
    finally:
        for k, v in env_before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _check_not_a_starting_worker() -> None:
    """Fail at once (not after loading the data) in a spawned process that is still importing
    the parent's script: the script calls run_sweep without the `__main__` guard."""
    import multiprocessing

    if getattr(multiprocessing.current_process(), "_inheriting", False):  # as multiprocessing checks it
        raise WorkersFailedToStart(
            "run_sweep was called while a sweep worker process was starting: the calling script "
            "runs it on import; put the call under `if __name__ == \"__main__\":` or use jobs=1"
        )


@contextlib.contextmanager
def _noting_sigterm(seen: list):
    """While the block runs, SIGTERM appends to `seen` what the installed handler raised (None
    if it returned) before passing it on. Only when that handler is a Python function (the CLI's
    raises `Terminated`) and in the main thread, where handlers can be set."""
    import signal
    import threading

    previous = signal.getsignal(signal.SIGTERM)
    if not callable(previous) or threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        try:
            previous(signum, frame)
        except BaseException as exc:
            seen.append(exc)
            raise
        seen.append(None)

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


#: how long a broken pool waits for a SIGTERM that killed its workers to reach the parent
_SIGTERM_GRACE_S = 0.2


def _broken_pool_error(started: bool, sigterm: Sequence = ()) -> BaseException:
    """The error for a pool whose workers died; `sigterm`: what `_noting_sigterm` saw."""
    if sigterm:
        # The handler ran, yet the broken pool got here (its exception lost on the way, e.g.
        # raised inside a finalizer, where Python prints and drops it): the workers died of
        # the SIGTERM, so end as the handler said (the CLI: "terminated", exit status 143),
        # not with advice about memory.
        if isinstance(sigterm[0], BaseException):
            return sigterm[0]
        return MemccError("the sweep was terminated (SIGTERM), which ended its worker processes")
    if started:
        return MemccError("a sweep worker process died while evaluating a point (killed, or out of "
                          "memory?); try fewer jobs (--jobs 1 evaluates in the main process)")
    return WorkersFailedToStart(
        "the sweep's worker processes died while starting (their error is above). Each worker "
        "imports the calling script again (multiprocessing's spawn), so call run_sweep from a script "
        "file under `if __name__ == \"__main__\":` (a script read from stdin cannot be imported), "
        "or use jobs=1 (--jobs 1)"
    )


def _terminate_workers(pool) -> None:
    """SIGTERM to the pool's worker processes (Python 3.14's `terminate_workers`, else by hand)."""
    terminate = getattr(pool, "terminate_workers", None)
    if terminate is not None:
        try:
            terminate()
        except Exception:  # noqa: BLE001 - already shut down
            pass
        return
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        try:
            if process.is_alive():
                process.terminate()
        except (OSError, ValueError, AttributeError):  # exited, or never fully started
            pass


def _describe_fixed(settings: Mapping[str, Any]) -> dict:
    """The fixed settings that differ from compile's defaults, for plot titles and reports."""
    from memcc import config as cfg

    out = {}
    for k, v in settings.items():
        if k == "seed" or v == cfg.DEFAULTS.get(k):
            continue
        if k == "tile":
            v = format_value(tuple(v))
        elif k == "nonidealities":
            v = [";".join(f"{a}={b}" for a, b in n.items()) if isinstance(n, Mapping) else str(n) for n in v]
        elif k in ("device_params", "programming_options"):
            v = {a: str(b) for a, b in v.items()}
        out[k] = v
    return out


# --------------------------------------------------------------------------------------------
# Plot
# --------------------------------------------------------------------------------------------


def plot_sweep(result: SweepResult, path, title: str | None = None) -> Path:
    """Accuracy vs. the first varied setting: mean over seeds (line), ± std (error bars),
    min–max (band), each seed (dots); one line per value of the other varied settings; the
    digital baseline as a dashed line. Written atomically."""
    from memcc.io import atomic_output
    from memcc.plots import _pyplot

    plt = _pyplot()
    xkey = result.keys[0]
    others = result.keys[1:]
    xvalues = list(dict.fromkeys(r["values"][xkey] for r in result.rows))
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in xvalues)
    positive = numeric and all(v > 0 for v in xvalues)
    log = numeric and positive and VARY_KEYS[xkey].log and max(xvalues) / min(xvalues) >= 8
    pos = {v: (float(v) if numeric else i) for i, v in enumerate(xvalues)}

    fig, ax = plt.subplots(figsize=(6.6, 4.4))
    series: dict[tuple, dict] = {}
    for r in result.rows:
        g = tuple(r["values"][k] for k in others)
        series.setdefault(g, {}).setdefault(r["values"][xkey], []).append(r["accuracy"] * 100)
    many = len(series) > 1
    for i, (g, by_x) in enumerate(series.items()):
        color = f"C{i % 10}"
        xs = [pos[v] for v in xvalues if v in by_x]
        accs = [np.asarray(by_x[v]) for v in xvalues if v in by_x]
        mean = np.array([a.mean() for a in accs])
        std = np.array([a.std() for a in accs])
        lo = np.array([a.min() for a in accs])
        hi = np.array([a.max() for a in accs])
        label = ", ".join(f"{VARY_KEYS[k].legend} = {format_value(v)}" for k, v in zip(others, g)) if many else (
            _seeds_text(max(len(a) for a in accs)))
        ax.fill_between(xs, lo, hi, color=color, alpha=0.15, lw=0)
        ax.errorbar(xs, mean, yerr=std, color=color, marker="o", ms=4, lw=1.6, capsize=3, label=label)
        for x, a in zip(xs, accs):
            ax.plot([x] * len(a), a, ".", color=color, ms=3, alpha=0.5)
    b = result.baseline["accuracy"] * 100
    ax.axhline(b, color="0.35", ls="--", lw=1.2, label=f"digital baseline ({b:.2f} %)")
    if log:
        ax.set_xscale("log", base=2 if xkey == "n-states" else 10)
    ax.set_xticks([pos[v] for v in xvalues])
    ax.set_xticklabels([format_value(v) for v in xvalues])
    ax.minorticks_off()
    ax.set_xlabel(VARY_KEYS[xkey].label)
    ax.set_ylabel("test accuracy (%)")
    lo_all = min(min(r["accuracy"] for r in result.rows) * 100, b)
    ax.set_ylim(max(0.0, lo_all - 0.08 * (100 - lo_all) - 1), min(100.5, max(b, max(r["accuracy"] for r in result.rows) * 100) + 2))
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right" if _worse_on_left(result, xkey) else "lower left", fontsize=8, framealpha=0.9)
    title = title or _default_title(result)
    longest = max(len(line) for line in title.splitlines()) if title else 0
    ax.set_title(title, fontsize=10 if longest <= 72 else max(7, int(10 * 72 / longest)))
    fig.tight_layout()
    path = Path(path)
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)
    return path


def _seeds_text(n: int) -> str:
    return f"crossbar, mean ± std over {n} seeds" if n > 1 else "crossbar, 1 seed"


def _worse_on_left(result: SweepResult, xkey: str) -> bool:
    xs = list(dict.fromkeys(r["values"][xkey] for r in result.rows))
    first = np.mean([r["accuracy"] for r in result.rows if r["values"][xkey] == xs[0]])
    last = np.mean([r["accuracy"] for r in result.rows if r["values"][xkey] == xs[-1]])
    return first < last


def _default_title(result: SweepResult) -> str:
    fixed = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in result.fixed.items() if k not in ("device_params",))
    n = result.baseline["n_samples"]
    return f"{result.model_name} on {result.data_name} ({n:,} samples)" + (f"\n{fixed}" if fixed else "")


__all__ = ["run_sweep", "SweepResult", "plot_sweep", "parse_grid", "parse_vary", "parse_seeds",
           "point_settings", "check_point", "check_model", "choose_output", "VARY_KEYS",
           "WorkersFailedToStart"]
