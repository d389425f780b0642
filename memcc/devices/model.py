"""Base class of memcc's dynamic (switching) device models.

A :class:`DeviceModel` holds named parameters (numbers, words such as a window name, per-device
numpy arrays, or :class:`~memcc.devices.parameters.Distribution` objects that :meth:`sample` turns
into per-device arrays) and the physics of one device type, vectorised over devices: the state of
N devices is a float64 array of shape (N,) (any shape when every parameter is a scalar).

Polarity convention (all memcc models, and :mod:`memcc.programming`)
--------------------------------------------------------------------
A **positive** voltage at or above the model's SET threshold (``set_threshold`` > 0) raises the
conductance (SET, towards ``g_on = 1/r_on``); a **negative** voltage at or below the RESET
threshold (``reset_threshold`` < 0) lowers it (RESET, towards ``g_off = 1/r_off``). Linear ion
drift, Stanford-PKU and the data-driven model follow this in their published form. VTEAM's
published form (Kvatinsky et al. 2015) switches ON for negative voltages (v < v_on < 0); memcc
mounts the VTEAM device the other way round (the model's voltage is minus the applied one), so
its SET threshold is ``-v_on`` and its RESET threshold ``-v_off``. MemTorch 1.1.6 applies VTEAM
in its published orientation but programs it as if positive voltage SET the device, which is why
its VTEAM programming fails; memcc's programming reads the thresholds from the model instead.

Time integration
----------------
:meth:`step` advances the state by one time step ``dt`` (default: the model's
``time_series_resolution``) with the voltage held constant (forward Euler on the state
equation, then clipping to the state bounds, unless a model documents otherwise).
:meth:`apply_pulse` applies a constant-voltage pulse of a given width: by default as
``ceil(width/dt)`` such steps; models whose state equation has a closed-form solution for a
constant voltage (VTEAM without window, linear ion drift without window, the data-driven model)
use it instead — for VTEAM and the data-driven model this equals the stepped result exactly.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import numpy as np

from memcc.devices.parameters import Distribution, ParameterError, describe_value, from_config_value, sample_parameters
from memcc.errors import ConfigError

#: Devices per chunk in vectorised loops (float64 arrays of 512 KiB: cache-friendly).
DEFAULT_CHUNK = 1 << 16

#: Relative margin by which `DeviceModel.with_d2d_std` keeps its clip bounds inside the valid
#: resistances (see the comment there).
D2D_MARGIN = 1e-6


@dataclass(frozen=True)
class Param:
    """Specification of one model parameter."""

    name: str
    default: Any
    unit: str = ""
    doc: str = ""
    kind: str = "float"  # "float", "int" or "choice"
    check: str | None = None  # "positive", "negative", "nonneg", "nonzero", "prob" or None
    choices: tuple = ()

    def validate(self, model: str, value: Any) -> Any:
        """Return the value in canonical form or raise ParameterError."""
        where = f"device {model!r}: parameter {self.name!r}"
        if self.kind == "choice":
            if not isinstance(value, str) or value.lower() not in self.choices:
                raise ParameterError(f"{where} must be one of {', '.join(self.choices)}, got {value!r}")
            return value.lower()
        if isinstance(value, str):
            value = from_config_value(self.name, value)
            if isinstance(value, str):
                raise ParameterError(f"{where}: expected a number, got {value!r}")
        if isinstance(value, Distribution):
            if self.kind == "int" and not value.is_fixed:
                raise ParameterError(f"{where} is an integer and cannot be a distribution")
            if value.is_fixed:
                value = min(max(value.mean, value.min), value.max)
            else:
                self._check(where, np.array([value.mean]), "mean")
                return value
        if isinstance(value, (list, tuple)) or isinstance(value, np.ndarray):
            arr = np.asarray(value, dtype=float)
            if arr.ndim != 1:
                raise ParameterError(f"{where}: per-device values must be a 1-D array, got shape {arr.shape}")
            if arr.size and not np.all(np.isfinite(arr)):
                raise ParameterError(f"{where}: per-device values must be finite")
            self._check(where, arr, "values")
            return arr.copy()
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise ParameterError(f"{where}: expected a number, got {value!r}")
        value = float(value)
        if not math.isfinite(value):
            raise ParameterError(f"{where}: value must be finite, got {value!r}")
        if self.kind == "int" and value != int(value):
            raise ParameterError(f"{where} must be an integer, got {value!r}")
        self._check(where, np.array([value]), "value")
        return value

    def _check(self, where: str, arr: np.ndarray, what: str) -> None:
        c = self.check
        bad = None
        if c == "positive":
            bad = arr <= 0
            need = "> 0"
        elif c == "negative":
            bad = arr >= 0
            need = "< 0"
        elif c == "nonneg":
            bad = arr < 0
            need = ">= 0"
        elif c == "nonzero":
            bad = arr == 0
            need = "!= 0"
        elif c == "prob":
            bad = (arr <= 0) | (arr > 1)
            need = "in (0, 1]"
        if bad is not None and np.any(bad):
            first = arr[np.argmax(bad)]
            raise ParameterError(f"{where} must be {need} {self.unit}".rstrip() + f", got {what} {first:g}")


def default_workers() -> int:
    """Threads for vectorised loops (numpy releases the GIL inside its ufuncs)."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        n = os.cpu_count() or 1
    return max(1, min(n, 8))


def run_chunked(n: int, fn: Callable[[int, int], None], chunk_size: int = DEFAULT_CHUNK, workers: int | None = None,
                progress: Callable[[int], None] | None = None) -> None:
    """Call ``fn(start, stop)`` for consecutive chunks of ``range(n)``, on up to ``workers`` threads."""
    chunk_size = max(1, int(chunk_size))
    bounds = [(a, min(n, a + chunk_size)) for a in range(0, n, chunk_size)]
    workers = default_workers() if workers is None else max(1, int(workers))

    def job(ab):
        fn(*ab)
        if progress is not None:
            progress(ab[1] - ab[0])

    if workers == 1 or len(bounds) <= 1:
        for ab in bounds:
            job(ab)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for _ in pool.map(job, bounds):
            pass


class DeviceModel:
    """A switching memristive device model (see the module docstring).

    Subclasses set ``name``, ``summary``, ``PARAMETERS``, ``state_name``/``state_unit``,
    ``IV_DEFAULTS``, ``PROGRAMMING_DEFAULTS`` and implement ``_derive``, ``state_bounds``,
    ``conductance``, ``current``, ``state_for_conductance``, ``rate`` and the two thresholds.
    """

    name: ClassVar[str] = "model"
    summary: ClassVar[str] = ""
    state_name: ClassVar[str] = "x"
    state_unit: ClassVar[str] = ""
    PARAMETERS: ClassVar[tuple[Param, ...]] = ()
    #: Defaults of :meth:`iv_loop` (amplitude V, frequency Hz, duration s, initial state).
    IV_DEFAULTS: ClassVar[dict] = {}
    #: Defaults of :func:`memcc.programming.program_naive` for this model.
    PROGRAMMING_DEFAULTS: ClassVar[dict] = {}
    #: Default device-to-device variability: relative std of r_on and r_off, sampled once per
    #: device when a compilation does not fix them (`memcc.compile(d2d_std=...)`). 10 % is of
    #: the order of the cycle-independent spread reported for HfO2/TaOx RRAM arrays and is the
    #: middle of the range the MemTorch paper sweeps (Fig. 7, 0 to 30 %).
    D2D_STD: ClassVar[float] = 0.10

    # ------------------------------------------------------------------ parameters
    def __init__(self, **params):
        specs = self.parameter_specs()
        unknown = sorted(set(params) - set(specs))
        if unknown:
            import difflib

            hints = []
            for u in unknown:
                close = difflib.get_close_matches(u, list(specs), n=1)
                hints.append(f"{u!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            raise ParameterError(
                f"device {self.name!r} has no parameter {', '.join(hints)}; its parameters are: {', '.join(specs)}"
            )
        values: dict[str, Any] = {}
        for pname, spec in specs.items():
            raw = params.get(pname, None)
            values[pname] = spec.default if raw is None else spec.validate(self.name, raw)
        n = None
        for pname, v in values.items():
            if isinstance(v, np.ndarray):
                if n is None:
                    n = v.size
                elif v.size != n:
                    raise ParameterError(
                        f"device {self.name!r}: per-device arrays have different lengths ({n} and {v.size} for {pname!r})"
                    )
        self._values = values
        self._n = n
        self.p: dict[str, Any] | None = None
        if not self.is_stochastic:
            p = {k: v for k, v in values.items()}
            self._derive(p)
            self.p = p

    @classmethod
    def parameter_specs(cls) -> dict[str, Param]:
        return {s.name: s for s in cls.PARAMETERS}

    @classmethod
    def parameter_names(cls) -> list[str]:
        return [s.name for s in cls.PARAMETERS]

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {s.name: s.default for s in cls.PARAMETERS}

    def parameters(self) -> dict[str, Any]:
        """The parameter values as given (numbers, words, arrays or Distributions)."""
        return dict(self._values)

    def replace(self, **params) -> "DeviceModel":
        """A new model of the same class with some parameters changed."""
        merged = dict(self._values)
        merged.update(params)
        return type(self)(**merged)

    def resistance_limits(self) -> dict[str, tuple[float, float]]:
        """The open intervals ``{"r_on": (lo, hi), "r_off": (lo, hi)}`` of resistances (ohm) that
        make a valid device together with this model's other parameters, apart from the
        ``r_on < r_off`` that every model needs. :meth:`with_d2d_std` keeps its samples inside.

        The base class has no further limit, ``(0, inf)`` for both; a model whose equations
        exclude some resistances overrides this (e.g. Stanford-PKU: r_on must exceed the
        resistance at zero gap). Other parameters that are distributions or per-device arrays
        count with their worst case over ``[min, max]`` (see :func:`value_range`); a limit that
        cannot be bounded that way (an unbounded distribution) is left out.
        """
        return {"r_on": (0.0, math.inf), "r_off": (0.0, math.inf)}

    def clip_bounds(self, name: str, mean: float, low: float, high: float, limits=None) -> tuple[float, float]:
        """[low, high] for a spread of resistance `name` around `mean`, narrowed to at least 1e-3
        of the mean and a relative D2D_MARGIN inside the model's `resistance_limits` (the
        margin: see `with_d2d_std`), never so far that `mean` itself falls outside."""
        lim_lo, lim_hi = (limits or self.resistance_limits()).get(name, (0.0, math.inf))
        return (max(low, 1e-3 * mean, min(lim_lo * (1 + D2D_MARGIN), mean)),
                min(high, max(lim_hi / (1 + D2D_MARGIN), mean)))

    def with_d2d_std(self, rel_std: float, keep=()) -> "DeviceModel":
        """A copy whose fixed r_on and r_off become clipped normals of relative std `rel_std`.

        Parameters named in `keep` (set explicitly by the user) and parameters that already are
        distributions are left alone. Samples are clipped at ±3 std, at 1e-3 of the mean from
        below, inside the model's :meth:`resistance_limits`, and r_on strictly below / r_off at
        or above the geometric mean of the nominal r_on and r_off, so that every sampled device
        is valid (r_on < r_off) however wide the spread. The nominal values always stay inside
        the clip range (they are valid devices), so `nominal_device` is unchanged.
        """
        if rel_std < 0 or not np.isfinite(rel_std):
            raise ConfigError(f"d2d_std must be a finite number >= 0, got {rel_std!r}")
        if rel_std == 0:
            return self
        from memcc.devices.parameters import Distribution

        nominal = {n: self._values.get(n) for n in ("r_on", "r_off")}
        middle = None
        if all(isinstance(v, (int, float, np.integer, np.floating)) for v in nominal.values()):
            middle = float(np.sqrt(float(nominal["r_on"]) * float(nominal["r_off"])))
        limits = self.resistance_limits()
        # Why a margin: clipping r_on and r_off to the same value (the geometric mean), or r_on to
        # a model limit itself, gives invalid devices (r_on == r_off; a Stanford-PKU ON gap of
        # 0). Clip bounds a relative D2D_MARGIN inside make every sample strictly valid, with a
        # gap far above float64 rounding for derived quantities (1/r, log), while moving a
        # clipped sample by only 1e-6 relative. The margin from the geometric mean is taken on
        # the r_on side only: r_off's clip there binds at a smaller std than r_on's, so spreads
        # whose samples were valid before are bit-identical unless r_on reached that clip or
        # a model limit.
        changed = {}
        for name, value in nominal.items():
            if name in keep or isinstance(value, (Distribution, np.ndarray)) or value is None:
                continue
            mean = float(value)
            low, high = self.clip_bounds(name, mean, mean - 3 * rel_std * mean, mean + 3 * rel_std * mean, limits)
            if middle is not None and name == "r_on":
                high = min(high, max(middle / (1 + D2D_MARGIN), mean))
            if middle is not None and name == "r_off":
                low = max(low, middle)
            changed[name] = Distribution(mean, rel_std * mean, low, high)
        return self.replace(**changed) if changed else self

    def describe(self) -> list[tuple[str, str, str, str]]:
        """(name, value, unit, description) rows for `memcc device show`."""
        specs = self.parameter_specs()
        return [(k, describe_value(v), specs[k].unit, specs[k].doc) for k, v in self._values.items()]

    def __repr__(self) -> str:
        changed = {k: v for k, v in self._values.items() if not _same(v, self.parameter_specs()[k].default)}
        inner = ", ".join(f"{k}={describe_value(v)}" for k, v in changed.items())
        return f"{type(self).__name__}({inner})"

    @property
    def is_stochastic(self) -> bool:
        """True while some parameter is still a Distribution (call :meth:`sample`)."""
        return any(isinstance(v, Distribution) for v in self._values.values())

    @property
    def n_devices(self) -> int | None:
        """Number of devices the per-device parameter arrays describe (None: all scalar)."""
        return self._n

    def sample(self, n: int, seed=None) -> "DeviceModel":
        """A model for ``n`` devices whose Distribution parameters are sampled once per device.

        Same ``seed`` (int) → bit-identical parameters. Parameters that are already per-device
        arrays must have length ``n``; scalars stay scalars.
        """
        n = int(n)
        for k, v in self._values.items():
            if isinstance(v, np.ndarray) and v.size != n:
                raise ParameterError(f"device {self.name!r}: parameter {k!r} has {v.size} values, expected {n}")
        values = sample_parameters(self._values, n, seed)
        model = type(self)(**values)
        if model._n is None and any(isinstance(v, Distribution) for v in self._values.values()):
            model._n = n
        return model

    def take(self, idx) -> "DeviceModel":
        """The model of a subset of the devices (index array, mask or slice)."""
        if self._n is None:
            return self
        if self.p is None:
            raise ConfigError(f"device {self.name!r}: sample() the stochastic parameters first")
        new = object.__new__(type(self))
        new._values = {k: (v[idx] if isinstance(v, np.ndarray) else v) for k, v in self._values.items()}
        new.p = {k: (v[idx] if isinstance(v, np.ndarray) and v.ndim >= 1 else v) for k, v in self.p.items()}
        sizes = [v.size for v in new._values.values() if isinstance(v, np.ndarray)]
        new._n = sizes[0] if sizes else None
        return new

    def _need(self) -> dict[str, Any]:
        if self.p is None:
            names = [k for k, v in self._values.items() if isinstance(v, Distribution)]
            raise ConfigError(
                f"device {self.name!r}: parameter(s) {', '.join(names)} are distributions; "
                "call .sample(n_devices, seed) to draw per-device values first"
            )
        return self.p

    def _derive(self, p: dict[str, Any]) -> None:
        """Add derived quantities to ``p`` and check cross-parameter constraints."""
        r_on, r_off = np.asarray(p["r_on"]), np.asarray(p["r_off"])
        if np.any(r_on >= r_off):
            raise ParameterError(
                f"device {self.name!r}: r_on must be smaller than r_off "
                f"(got r_on {np.max(r_on):g} ohm, r_off {np.min(r_off):g} ohm)"
            )

    # ------------------------------------------------------------------ ranges
    @property
    def r_on(self):
        return self._need()["r_on"]

    @property
    def r_off(self):
        return self._need()["r_off"]

    @property
    def g_on(self):
        """Largest conductance 1/r_on (S); per-device array when r_on varies."""
        return 1.0 / np.asarray(self.r_on, dtype=float) if isinstance(self.r_on, np.ndarray) else 1.0 / self.r_on

    @property
    def g_off(self):
        """Smallest conductance 1/r_off (S); per-device array when r_off varies."""
        return 1.0 / np.asarray(self.r_off, dtype=float) if isinstance(self.r_off, np.ndarray) else 1.0 / self.r_off

    @property
    def dt(self) -> float:
        """The model's time step (``time_series_resolution``), seconds."""
        return float(np.max(self._need()["time_series_resolution"]))

    @property
    def set_threshold(self):
        """Smallest positive voltage that raises the conductance (V)."""
        raise NotImplementedError

    @property
    def reset_threshold(self):
        """Largest (closest to 0) negative voltage that lowers the conductance (V)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ physics (subclasses)
    def state_bounds(self):
        """(lowest, highest) state; scalars or per-device arrays."""
        raise NotImplementedError

    def conductance(self, state, v_read=None):
        """Conductance (S) of devices in ``state`` read at ``v_read`` (default: model's read voltage)."""
        raise NotImplementedError

    def current(self, state, v):
        """Current (A) through devices in ``state`` at voltage ``v``."""
        raise NotImplementedError

    def state_for_conductance(self, g):
        """The state whose read conductance is ``g`` (clipped to the device's range)."""
        raise NotImplementedError

    def rate(self, state, v):
        """d(state)/dt at voltage ``v`` (the state equation, window included)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ generic machinery
    def initial_state(self, which: Any = "off", n: int | None = None) -> np.ndarray:
        """A state array: ``"off"`` (g_off), ``"on"`` (g_on), ``"mid"`` (halfway in conductance)
        or conductances (array/number)."""
        p = self._need()
        if n is None:
            n = self._n if self._n is not None else 1
        if isinstance(which, str):
            g_on, g_off = np.asarray(self.g_on, float), np.asarray(self.g_off, float)
            if which == "off":
                g = g_off
            elif which == "on":
                g = g_on
            elif which == "mid":
                g = 0.5 * (g_on + g_off)
            else:
                raise ConfigError(f"initial state must be 'off', 'on', 'mid' or conductances, got {which!r}")
            g = np.broadcast_to(g, (n,)).astype(float)
        else:
            g = np.broadcast_to(np.asarray(which, dtype=float), (n,)).astype(float)
        del p
        return np.asarray(self.state_for_conductance(g), dtype=float).copy()

    def clip_state(self, state):
        lo, hi = self.state_bounds()
        return np.minimum(np.maximum(state, lo), hi)

    def step(self, state, v, dt=None):
        """State after one time step of ``dt`` at constant voltage ``v`` (forward Euler + clip)."""
        dt = self.dt if dt is None else dt
        state = np.asarray(state, dtype=float)
        return self.clip_state(state + self.rate(state, v) * dt)

    def exact_pulse(self, state, v, width):
        """Closed-form state after a constant-voltage pulse, or None when the model has none."""
        return None

    def apply_pulse(self, state, v, width, dt=None):
        """State after a pulse of constant voltage ``v`` lasting ``width`` s (both may be per-device arrays).

        Uses :meth:`exact_pulse` when available, else ``ceil(max(width)/dt)`` equal Euler steps
        (each device's steps are ``width/n`` long, never longer than ``dt``).
        """
        dt = self.dt if dt is None else float(dt)
        wmax = float(np.max(width))
        if wmax <= 0:
            return np.array(state, dtype=float, copy=True)
        if np.any(np.asarray(width) < 0):
            raise ValueError("pulse width must be >= 0 s")
        out = self.exact_pulse(state, v, width)
        if out is not None:
            return out
        n = max(1, int(math.ceil(wmax / dt - 1e-9)))
        h = np.asarray(width, dtype=float) / n if np.ndim(width) else wmax / n
        out = np.asarray(state, dtype=float)
        for _ in range(n):
            out = self.step(out, v, h)
        return out

    def simulate(self, state, waveform, dt=None, record: str | None = None, chunk_size: int = DEFAULT_CHUNK,
                 workers: int | None = None):
        """Advance devices through a voltage waveform sampled every ``dt`` seconds.

        ``state``: (N,) array (or anything broadcastable to the per-device parameters).
        ``waveform``: (T,) voltages applied to every device, or (T, N) one column per device.
        ``record``: None (return the final state), or ``"current"``/``"conductance"``/``"both"``
        to also return the (T, N) current and/or conductance after each step (for small N).
        Without ``record``, runs of equal voltages are applied as one pulse (:meth:`apply_pulse`)
        and devices are processed in chunks on several threads.
        """
        self._need()
        dt = self.dt if dt is None else float(dt)
        state = np.array(state, dtype=float, copy=True)
        wf = np.asarray(waveform, dtype=float)
        if wf.ndim not in (1, 2):
            raise ValueError(f"waveform must be (T,) or (T, N), got shape {wf.shape}")
        if record is not None:
            if record not in ("current", "conductance", "both"):
                raise ValueError(f"record must be None, 'current', 'conductance' or 'both', got {record!r}")
            T = wf.shape[0]
            cur = np.empty((T,) + state.shape) if record in ("current", "both") else None
            cond = np.empty((T,) + state.shape) if record in ("conductance", "both") else None
            for k in range(T):
                state = self.step(state, wf[k], dt)
                if cur is not None:
                    cur[k] = self.current(state, wf[k])
                if cond is not None:
                    cond[k] = self.conductance(state)
            if record == "current":
                return state, cur
            if record == "conductance":
                return state, cond
            return state, cur, cond
        if state.ndim != 1:
            flat = state.reshape(-1)
            out = self.simulate(flat, wf.reshape(wf.shape[0], -1) if wf.ndim == 2 else wf, dt,
                                chunk_size=chunk_size, workers=workers)
            return out.reshape(state.shape)
        n = state.size
        if wf.ndim == 1:
            change = np.flatnonzero(np.diff(wf)) + 1
            starts = np.concatenate(([0], change))
            lengths = np.diff(np.concatenate((starts, [wf.size])))
            runs = list(zip(wf[starts].tolist(), lengths.tolist())) if wf.size else []
        per_device = self._n is not None

        def work(a, b):
            model = self.take(slice(a, b)) if per_device else self
            s = state[a:b]
            if wf.ndim == 1:
                for v, length in runs:
                    if v == 0.0 and model.zero_voltage_is_idle:
                        continue
                    s = model.apply_pulse(s, v, length * dt, dt)
            else:
                col = wf[:, a:b]
                for k in range(col.shape[0]):
                    s = model.step(s, col[k], dt)
            state[a:b] = s

        run_chunked(n, work, chunk_size, workers)
        return state

    #: True when a zero voltage never changes the state (lets simulate skip idle runs).
    zero_voltage_is_idle: ClassVar[bool] = True

    def iv_sampling(self, amplitude: float | None = None, frequency: float | None = None,
                    duration: float | None = None, dt: float | None = None, max_steps: int = 20000) -> dict:
        """How :meth:`iv_loop` would sample this sweep, without running it.

        Returns a dict: the resolved ``amplitude``, ``frequency``, ``duration`` (defaults from
        ``IV_DEFAULTS``), ``device_dt`` (device 0's time step, or ``dt`` when given), ``dt`` (that
        step, coarsened so that the sweep has at most ``max_steps`` steps), ``max_steps``,
        ``n_steps`` and ``samples_per_period`` (1 / (frequency·dt): how smooth the loop will look).

        Raises ParameterError unless amplitude, frequency, duration and dt are finite and > 0;
        the error's ``parameter`` names the argument, ``value`` and ``requirement`` say what
        was wrong, so that a caller (the CLI) can word it in terms of its own options.
        """
        d = self.IV_DEFAULTS
        values = {
            "amplitude": d["amplitude"] if amplitude is None else amplitude,
            "frequency": d["frequency"] if frequency is None else frequency,
            "duration": d["duration"] if duration is None else duration,
        }
        if dt is not None:
            values["dt"] = dt
        for name, value in values.items():
            try:
                value = float(value)
            except (TypeError, ValueError):
                value, requirement = math.nan, "must be a number"
            else:
                # NaN fails every comparison, so "<= 0" alone would let it through to an empty plot.
                requirement = ("must be a finite number" if not math.isfinite(value)
                               else "must be > 0" if value <= 0 else None)
            if requirement is not None:
                err = ParameterError(f"iv_loop: {name} {values[name]}: {requirement}")
                err.parameter, err.value, err.requirement = name, value, requirement
                raise err
            values[name] = value
        if isinstance(max_steps, bool) or not isinstance(max_steps, (int, np.integer)) or max_steps < 1:
            raise ParameterError(f"iv_loop: max_steps {max_steps!r}: must be an integer >= 1")
        frequency, duration = values["frequency"], values["duration"]
        model = self.take(np.array([0])) if self._n is not None else self
        device_dt = model.dt if dt is None else values["dt"]
        step = max(device_dt, duration / max_steps)
        return {
            "amplitude": values["amplitude"], "frequency": frequency, "duration": duration,
            "device_dt": device_dt, "dt": step, "max_steps": int(max_steps),
            "n_steps": int(round(duration / step)) + 1, "samples_per_period": 1.0 / (frequency * step),
        }

    def iv_loop(self, amplitude: float | None = None, frequency: float | None = None, duration: float | None = None,
                initial: Any = None, dt: float | None = None, max_steps: int = 20000):
        """One device's response to ``v(t) = amplitude·sin(2π·frequency·t)`` for ``duration`` s.

        Returns (t, v, i, g): time (s), voltage (V), current (A) and read conductance (S) after
        each step. ``dt`` defaults to the model's time_series_resolution, coarsened so that the
        sweep has at most ``max_steps`` steps (see :meth:`iv_sampling`, which also says which
        values are refused). Defaults come from ``IV_DEFAULTS`` (MemTorch's hysteresis demos).
        For a model with per-device parameters, device 0 is swept.
        """
        plan = self.iv_sampling(amplitude, frequency, duration, dt, max_steps)
        initial = self.IV_DEFAULTS.get("initial", "on") if initial is None else initial
        model = self.take(np.array([0])) if self._n is not None else self
        t = np.arange(plan["n_steps"]) * plan["dt"]
        v = plan["amplitude"] * np.sin(2 * np.pi * plan["frequency"] * t)
        s0 = model.initial_state(initial, 1)
        _, i, g = model.simulate(s0, v[:, None], plan["dt"], record="both")
        return t, v, i[:, 0], g[:, 0]


def value_range(value) -> tuple[float, float]:
    """(smallest, largest) value a parameter can take: a number twice, an array's min and max, a
    Distribution's [min, max] clip (possibly infinite)."""
    if isinstance(value, Distribution):
        if value.is_fixed:
            v = min(max(value.mean, value.min), value.max)
            return v, v
        return value.min, value.max
    arr = np.asarray(value, dtype=float)
    if arr.size == 0:
        return math.nan, math.nan
    return float(arr.min()), float(arr.max())


def _same(a, b) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return False
    return a == b


class LinearIV:
    """Mixin for models with a linear I-V, I = V / R(state) (VTEAM, linear ion drift): the
    subclass gives ``resistance(state)``."""

    def conductance(self, state, v_read=None):
        return 1.0 / self.resistance(np.asarray(state, dtype=float))

    def current(self, state, v):
        return np.asarray(v, dtype=float) / self.resistance(np.asarray(state, dtype=float))
