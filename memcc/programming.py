"""Programming simulation: writing target conductances into devices.

Two methods, both vectorised over any number of devices (targets of any shape):

``naive`` — write-and-verify with fixed pulses (the scheme of MemTorch's ``naive_program``,
made to follow the device's own polarity): every device starts in an initial state; on each
round its conductance is read, and a device whose conductance lies outside
``target·(1 ± tolerance)`` gets one SET pulse (``set_voltage`` > 0, raises the conductance) if it
is too low or one RESET pulse (``reset_voltage`` < 0) if it is too high. Pulses are simulated
with the model's state equation (:meth:`DeviceModel.apply_pulse`). Rounds repeat until every
device is within tolerance or ``max_pulses`` rounds have passed; devices that miss keep the state
they reached. Only unconverged devices are stepped, devices are processed in chunks (bounded
memory) on several threads.

A target outside a device's own range [1/r_off, 1/r_on] (possible with device-to-device
variability) is aimed at the nearest reachable conductance; such devices are reported in
``out_of_range`` and their error is measured against the requested target.

``ideal`` — set to target: the state whose conductance is the target, clipped to the device's
range (exact up to float rounding).

With ``adaptive=True`` (the default for models whose switching speed varies over orders of
magnitude across their range: linear ion drift, Stanford-PKU) each device's pulse width doubles
after a pulse in the same direction as its previous one (up to ``pulse_width·2^max_doublings``;
``max_doublings`` is at most the model's default + ``MAX_EXTRA_DOUBLINGS``) and halves after a
reversal, i.e. after an overshoot (down to ``min_pulse_width``, default the time step);
amplitudes stay fixed.

Default pulse parameters come from the model's ``PROGRAMMING_DEFAULTS`` (chosen so that targets
spread over the conductance range converge within the default 5 % tolerance; see each model's
docstring); the default tolerance is tighter than MemTorch's rel_tol 0.1, the budget is 200
pulses.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from memcc.devices.model import DEFAULT_CHUNK, DeviceModel, run_chunked
from memcc.errors import ConfigError

DEFAULT_TOLERANCE = 0.05
DEFAULT_MAX_PULSES = 200
METHODS = ("naive", "ideal")
#: ``max_doublings`` of models whose PROGRAMMING_DEFAULTS do not set it.
DEFAULT_MAX_DOUBLINGS = 8
#: How far ``max_doublings`` may exceed the model's default. Devices that do not converge (out of
#: range, oscillating) double their width up to the cap and keep pulsing there, and a stepped
#: model's pulse costs width/dt steps, so the worst-case time grows as 2^max_doublings
#: (Stanford-PKU on the digits model: 13 s at 8 instead of its default 2, over 120 s at 12, and
#: no end at 1000). Two more doublings keep the worst case within 4x the default's; wider pulses
#: did not converge better either (Stanford-PKU: 100 % of 2000 targets at 2, 99.9 % at 4, 87 % at 6).
MAX_EXTRA_DOUBLINGS = 2


def _is_integer(x) -> bool:
    if isinstance(x, bool):
        return False
    try:
        return int(x) == x
    except (TypeError, ValueError, OverflowError):
        return False


@dataclass
class ProgrammingResult:
    """Outcome of programming: arrays have the shape of the targets."""

    targets: np.ndarray
    conductances: np.ndarray
    pulses: np.ndarray
    converged: np.ndarray
    out_of_range: np.ndarray
    states: np.ndarray
    tolerance: float
    method: str
    max_pulses: int
    seconds: float = 0.0
    settings: dict = field(default_factory=dict)

    @property
    def n_devices(self) -> int:
        return int(self.targets.size)

    @property
    def fraction_converged(self) -> float:
        return float(self.converged.mean()) if self.targets.size else 1.0

    @property
    def budget_exhausted(self) -> np.ndarray:
        """Devices that used every pulse of the budget without converging."""
        return (~self.converged) & (self.pulses >= self.max_pulses)

    @property
    def devices_per_second(self) -> float:
        return self.n_devices / self.seconds if self.seconds > 0 else float("inf")

    def summary(self) -> dict:
        return summarize(self)


def _prepare(model: DeviceModel, targets, seed) -> tuple[DeviceModel, np.ndarray, tuple]:
    if not isinstance(model, DeviceModel):
        raise ConfigError(f"programming needs a switching device model, got {type(model).__name__}")
    t = np.asarray(targets, dtype=float)
    shape = t.shape
    flat = t.reshape(-1)
    if flat.size and not np.all(np.isfinite(flat)):
        raise ConfigError("target conductances must be finite")
    if np.any(flat < 0):
        raise ConfigError("target conductances must be >= 0 S")
    if model.is_stochastic:
        model = model.sample(flat.size, seed)
    elif model.n_devices is not None and model.n_devices != flat.size:
        raise ConfigError(f"the model holds parameters of {model.n_devices} devices but {flat.size} targets were given")
    return model, flat, shape


def _range(model: DeviceModel, n: int):
    g_off = np.broadcast_to(np.asarray(model.g_off, dtype=float), (n,))
    g_on = np.broadcast_to(np.asarray(model.g_on, dtype=float), (n,))
    return g_off, g_on


def program_ideal(model: DeviceModel, targets, seed=None) -> ProgrammingResult:
    """Set every device to its target conductance (clipped to its range), without pulses."""
    t0 = time.perf_counter()
    model, flat, shape = _prepare(model, targets, seed)
    g_off, g_on = _range(model, flat.size)
    goal = np.clip(flat, g_off, g_on)
    states = np.asarray(model.state_for_conductance(goal), dtype=float)
    states = np.broadcast_to(states, flat.shape).copy()
    g = np.broadcast_to(np.asarray(model.conductance(states), dtype=float), flat.shape)
    oor = (flat < g_off * (1 - 1e-12)) | (flat > g_on * (1 + 1e-12))
    return ProgrammingResult(
        targets=flat.reshape(shape), conductances=g.reshape(shape).copy(),
        pulses=np.zeros(shape, dtype=np.int32), converged=np.ones(shape, dtype=bool),
        out_of_range=oor.reshape(shape), states=states.reshape(shape), tolerance=0.0, method="ideal",
        max_pulses=0, seconds=time.perf_counter() - t0,
    )


def program_naive(model: DeviceModel, targets, *, tolerance: float = DEFAULT_TOLERANCE,
                  max_pulses: int = DEFAULT_MAX_PULSES, set_voltage: float | None = None,
                  reset_voltage: float | None = None, pulse_width: float | None = None,
                  reset_pulse_width: float | None = None, initial: Any = None, dt: float | None = None,
                  adaptive: bool | None = None, max_doublings: int | None = None,
                  min_pulse_width: float | None = None,
                  seed=None, chunk_size: int = DEFAULT_CHUNK, workers: int | None = None,
                  progress: bool | Callable[[int], None] | None = None) -> ProgrammingResult:
    """Program ``targets`` (S, any shape) by fixed-pulse write-and-verify (module docstring).

    ``model``: a device model; Distribution parameters are sampled once per device with ``seed``.
    ``tolerance``: relative, a device is done when |g - target| <= tolerance·target.
    ``set_voltage`` (> 0), ``reset_voltage`` (< 0), ``pulse_width`` (s; ``reset_pulse_width``
    defaults to it), ``initial`` (``"off"``, ``"on"``, ``"mid"``, a conductance or conductances, or
    a model-specific name) and ``dt`` (Euler step; default the model's time_series_resolution)
    default to the model's ``PROGRAMMING_DEFAULTS``.
    ``adaptive``, ``max_doublings``, ``min_pulse_width``: per-device pulse-width adaptation
    (module docstring).
    ``progress``: True for a tqdm bar, or a callable receiving the number of devices finished.
    Returns a :class:`ProgrammingResult`; ``budget_exhausted`` marks devices that used all
    ``max_pulses`` without converging.
    """
    t0 = time.perf_counter()
    model, flat, shape = _prepare(model, targets, seed)
    d = dict(type(model).PROGRAMMING_DEFAULTS)
    set_voltage = float(d.get("set_voltage", 1.0) if set_voltage is None else set_voltage)
    reset_voltage = float(d.get("reset_voltage", -1.0) if reset_voltage is None else reset_voltage)
    user_width = pulse_width is not None
    pulse_width = float(d.get("pulse_width", model.dt) if pulse_width is None else pulse_width)
    if reset_pulse_width is None:
        reset_pulse_width = pulse_width if user_width else d.get("reset_pulse_width", pulse_width)
    reset_pulse_width = float(reset_pulse_width)
    initial = d.get("initial", "off") if initial is None else initial
    adaptive = bool(d.get("adaptive", False) if adaptive is None else adaptive)
    default_doublings = int(d.get("max_doublings", DEFAULT_MAX_DOUBLINGS))
    if max_doublings is None:
        max_doublings = default_doublings
    elif not _is_integer(max_doublings):
        raise ConfigError(f"programming option max_doublings must be an integer >= 0, got {max_doublings!r}")
    limit = default_doublings + MAX_EXTRA_DOUBLINGS
    if not 0 <= max_doublings <= limit:
        raise ConfigError(
            f"programming option max_doublings must be between 0 and {limit} for {model.name} (its default "
            f"{default_doublings} + {MAX_EXTRA_DOUBLINGS}: each doubling can double the programming "
            f"time), got {max_doublings!r}"
        )
    max_doublings = int(max_doublings)
    dt = model.dt if dt is None else float(dt)
    if not (0 <= tolerance < 1):
        raise ConfigError(f"tolerance must be in [0, 1), got {tolerance!r}")
    if int(max_pulses) != max_pulses or max_pulses < 0:
        raise ConfigError(f"max_pulses must be an integer >= 0, got {max_pulses!r}")
    if set_voltage <= 0:
        raise ConfigError(f"set_voltage must be > 0 V (positive voltages SET), got {set_voltage!r}")
    if reset_voltage >= 0:
        raise ConfigError(f"reset_voltage must be < 0 V (negative voltages RESET), got {reset_voltage!r}")
    if pulse_width <= 0 or reset_pulse_width <= 0 or dt <= 0:
        raise ConfigError("pulse widths and dt must be > 0 s")
    max_pulses = int(max_pulses)
    n = flat.size
    per_device = model.n_devices is not None
    g_off_all, g_on_all = _range(model, n)
    states = np.empty(n)
    pulses = np.zeros(n, dtype=np.int32)
    init_arr = None
    if not isinstance(initial, str):
        init_arr = np.broadcast_to(np.asarray(initial, dtype=float), (n,))

    bar = None
    if progress is True:
        from tqdm import tqdm

        bar = tqdm(total=n, unit="dev", desc=f"programming {model.name}")
        callback = bar.update
    elif callable(progress):
        callback = progress
    else:
        callback = None

    if min_pulse_width is None:
        min_pulse_width = d.get("min_pulse_width", dt)
    w_min = float(min_pulse_width)
    w_set_max = pulse_width * 2.0 ** max_doublings
    w_reset_max = reset_pulse_width * 2.0 ** max_doublings

    def apply(mm: DeviceModel, s: np.ndarray, need_set: np.ndarray, act: np.ndarray, ws: np.ndarray,
              wr: np.ndarray) -> np.ndarray:
        v = np.where(act, np.where(need_set, set_voltage, reset_voltage), 0.0)
        width = np.where(need_set, ws, wr)
        new = mm.exact_pulse(s, v, width)
        if new is not None:
            return np.where(act, new, s)
        # stepped models: apply each distinct (polarity, width) group at the model's time step
        new = s.copy()
        codes = np.where(act, np.where(need_set, 1.0, -1.0) * width, 0.0)
        for c in np.unique(codes):
            if c == 0.0:
                continue
            ix = np.flatnonzero(codes == c)
            sub = mm.take(ix) if per_device else mm
            volt = set_voltage if c > 0 else reset_voltage
            new[ix] = sub.apply_pulse(s[ix], volt, abs(c), dt)
        return new

    def work(a: int, b: int) -> None:
        m = model.take(slice(a, b)) if per_device else model
        k = b - a
        goal = np.clip(flat[a:b], g_off_all[a:b], g_on_all[a:b])
        s = m.initial_state(initial if init_arr is None else init_arr[a:b], k)
        s = np.broadcast_to(s, (k,)).astype(float)
        out = s  # full chunk state, updated on compaction
        idx = np.arange(k)
        lo, hi = goal * (1.0 - tolerance), goal * (1.0 + tolerance)
        cnt = np.zeros(k, dtype=np.int32)
        ws = np.full(k, pulse_width)
        wr = np.full(k, reset_pulse_width)
        last = np.zeros(k, dtype=np.int8)
        mm = m
        for _ in range(max_pulses):
            g = mm.conductance(s)
            need_set = g < lo
            need_reset = g > hi
            act = need_set | need_reset
            nact = int(np.count_nonzero(act))
            if nact == 0:
                break
            if nact < 0.6 * s.size:  # drop converged devices from the working set
                out[idx] = s
                keep = np.flatnonzero(act)
                idx, s, lo, hi = idx[keep], s[keep], lo[keep], hi[keep]
                need_set, act = need_set[keep], act[keep]
                ws, wr, last = ws[keep], wr[keep], last[keep]
                mm = mm.take(keep) if per_device else mm
            if adaptive:
                d_now = np.where(need_set, 1, -1).astype(np.int8)
                same = last == d_now
                rev = last == -d_now
                ws = np.where(need_set & same, np.minimum(ws * 2.0, w_set_max),
                              np.where(need_set & rev, np.maximum(ws * 0.5, w_min), ws))
                wr = np.where(~need_set & same, np.minimum(wr * 2.0, w_reset_max),
                              np.where(~need_set & rev, np.maximum(wr * 0.5, w_min), wr))
                last = np.where(act, d_now, last)
            s = apply(mm, s, need_set, act, ws, wr)
            cnt[idx[act]] += 1
        out[idx] = s
        states[a:b] = out
        pulses[a:b] = cnt

    try:
        run_chunked(n, work, chunk_size, workers, callback)
    finally:
        if bar is not None:
            bar.close()
    g = np.broadcast_to(np.asarray(model.conductance(states), dtype=float), (n,))
    goal = np.clip(flat, g_off_all, g_on_all)
    converged = np.abs(g - goal) <= tolerance * goal * (1 + 1e-9)
    oor = (flat < g_off_all * (1 - 1e-12)) | (flat > g_on_all * (1 + 1e-12))
    return ProgrammingResult(
        targets=flat.reshape(shape), conductances=g.reshape(shape).copy(), pulses=pulses.reshape(shape),
        converged=converged.reshape(shape), out_of_range=oor.reshape(shape), states=states.reshape(shape),
        tolerance=float(tolerance), method="naive", max_pulses=max_pulses, seconds=time.perf_counter() - t0,
        settings=dict(set_voltage=set_voltage, reset_voltage=reset_voltage, pulse_width=pulse_width,
                      reset_pulse_width=reset_pulse_width, initial=initial if isinstance(initial, str) else "array",
                      dt=dt, adaptive=adaptive, max_doublings=max_doublings),
    )


def program(model: DeviceModel, targets, method: str = "naive", **kwargs) -> ProgrammingResult:
    """Program ``targets`` with ``method`` ``"naive"`` (:func:`program_naive`) or ``"ideal"``."""
    if method == "naive":
        return program_naive(model, targets, **kwargs)
    if method == "ideal":
        unknown = set(kwargs) - {"seed"}
        if unknown:
            raise ConfigError(f"programming method 'ideal' takes no {', '.join(sorted(unknown))}")
        return program_ideal(model, targets, **kwargs)
    raise ConfigError(f"unknown programming method {method!r} (known: {', '.join(METHODS)})")


def relative_error(achieved, targets) -> np.ndarray:
    """(achieved - target) / target, elementwise (NaN where the target is 0)."""
    a = np.asarray(achieved, dtype=float)
    t = np.asarray(targets, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(t > 0, (a - t) / np.where(t > 0, t, 1.0), np.nan)


PERCENTILES = (1, 5, 25, 50, 75, 95, 99)


def summarize(result_or_achieved, targets=None, tolerance: float | None = None) -> dict:
    """Statistics of the relative programming error (achieved - target) / target.

    Accepts a :class:`ProgrammingResult`, or achieved and target arrays. Returns a dict with
    n_devices, mean, std, mean_abs, rms, max_abs, p1…p99 (percentiles of the signed error),
    fraction_within_tolerance and, for a result, fraction_converged, n_budget_exhausted,
    n_out_of_range, mean_pulses, max_pulses_used, seconds, devices_per_second.
    """
    res = result_or_achieved if isinstance(result_or_achieved, ProgrammingResult) else None
    if res is not None:
        achieved, targets = res.conductances, res.targets
        tolerance = res.tolerance if tolerance is None else tolerance
    else:
        achieved = result_or_achieved
        if targets is None:
            raise ValueError("summarize(achieved, targets): targets missing")
    err = relative_error(achieved, targets).reshape(-1)
    err = err[np.isfinite(err)]
    out: dict[str, Any] = {"n_devices": int(np.size(targets))}
    if err.size:
        out.update(mean=float(err.mean()), std=float(err.std()), mean_abs=float(np.abs(err).mean()),
                   rms=float(np.sqrt(np.mean(err * err))), max_abs=float(np.abs(err).max()))
        for q, val in zip(PERCENTILES, np.percentile(err, PERCENTILES)):
            out[f"p{q}"] = float(val)
    if tolerance is not None:
        out["tolerance"] = float(tolerance)
        out["fraction_within_tolerance"] = float(np.mean(np.abs(err) <= tolerance * (1 + 1e-9))) if err.size else 1.0
    if res is not None:
        out.update(
            method=res.method, fraction_converged=res.fraction_converged,
            n_budget_exhausted=int(res.budget_exhausted.sum()), n_out_of_range=int(res.out_of_range.sum()),
            mean_pulses=float(res.pulses.mean()) if res.pulses.size else 0.0,
            max_pulses_used=int(res.pulses.max()) if res.pulses.size else 0,
            seconds=res.seconds, devices_per_second=res.devices_per_second,
        )
    return out


def format_summary(stats: dict) -> str:
    """A few lines of text for the CLI."""
    lines = [f"devices: {stats['n_devices']}"]
    if "mean" in stats:
        lines.append(
            "relative error: mean {mean:+.3%}  std {std:.3%}  mean|e| {mean_abs:.3%}  max|e| {max_abs:.3%}".format(**stats)
        )
        lines.append("percentiles: " + "  ".join(f"p{q} {stats[f'p{q}']:+.3%}" for q in PERCENTILES))
    if "fraction_converged" in stats:
        lines.append(outcome_text(stats))
        lines.append(f"pulses: mean {stats['mean_pulses']:.1f}, max {stats['max_pulses_used']}")
    return "\n".join(lines)


def outcome_text(stats: dict, *, short: bool = False) -> str:
    """What programming achieved, in words, from `summarize` statistics (or a compilation's
    programming totals, which add n_programmed).

    "Converged" in `ProgrammingResult` means "reached the nearest conductance the device can
    take", which a device whose target lies outside its range does while missing the target,
    so the text counts devices within tolerance of the target actually requested, and names
    out-of-range targets and exhausted pulse budgets separately (the counts overlap).
    ``short``: the one-clause form for a line per layer.
    """
    n = int(stats.get("n_programmed", stats.get("n_devices", 0)))
    oor = int(stats.get("n_out_of_range", 0))
    ideal = stats.get("method") == "ideal"
    if ideal:
        # set to target: every in-range device is exact, whatever the (zero) tolerance says
        good, phrase = n - oor, "set to their target"
    else:
        frac = stats.get("fraction_within_tolerance", 1.0 if n == 0 else 0.0)
        good, phrase = int(round(frac * n)), "within tolerance of their target"
    clipped = "target outside the device's range" + ("" if short else " (set to its nearest reachable conductance)")
    if short:
        text = f"{good:,}/{n:,} devices {phrase}"
        return text + (f" ({oor:,} with a {clipped})" if oor else "")
    text = f"{good:,} of {n:,} devices {phrase} ({_percent(good, n)}); {oor:,} with a {clipped}"
    if not ideal:
        text += f"; {int(stats.get('n_budget_exhausted', 0)):,} ran out of pulses (budget exhausted)"
    return text


def _percent(part: int, whole: int) -> str:
    if whole == 0:
        return "100 %"
    p = 100.0 * part / whole
    if 0 < part < whole:  # never round a miss up to 100 % or a hit down to 0 %
        p = min(max(p, 0.1), 99.9)
    return f"{p:.1f} %"
