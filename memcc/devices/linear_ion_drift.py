"""Linear ion drift memristor (the HP TiO2 model).

Strukov, Snider, Stewart & Williams, "The missing memristor found", Nature 453 (2008) 80-83.
With w in [0, D] the width of the doped (low-resistance) region and x = w/D (memcc's state):

    v(t) = (r_on x + r_off (1 - x)) i(t)
    dw/dt = mu_v r_on / D * i(t)          i.e.  dx/dt = u_v r_on / d^2 * i(t) * f(x, i)

with mobility ``u_v`` (mu_v, m^2 s^-1 V^-1), device length ``d`` (D) and window f. Positive
current widens the doped region and lowers the resistance, so positive voltages SET the device
(memcc's convention, :mod:`memcc.devices.model`). As in MemTorch, the state moves only while the
voltage is at or beyond the write thresholds (``v >= pos_write_threshold`` or
``v <= neg_write_threshold``); Strukov's original has no thresholds (set both to 0).

Windows (:mod:`memcc.devices.windows`): ``none`` (memcc's default: Strukov's original equation,
the state clipped to [0, 1]), ``joglekar`` (MemTorch's default, f = 1 - (2x - 1)^(2p) — correctly
parenthesised, unlike MemTorch 1.1.6), ``biolek`` or ``prodromakis``. memcc departs from
MemTorch's Joglekar default because that window vanishes at both bounds (a device at a bound never
moves: the terminal state problem) and makes the state equation stiff near them; with it the state
is kept ``TERMINAL_MARGIN`` (1e-6) inside the bounds, and programming needs many more (stepped)
pulses. Pass ``window=joglekar`` for MemTorch's behaviour.

Integration: forward Euler on x at time_series_resolution, the current computed from the state
at the start of the step. Without a window the state equation has a closed form for a constant
voltage above threshold: Q(x) = r_off x - (r_off - r_on) x^2 / 2 grows at the rate
u_v r_on v / d^2, which :meth:`exact_pulse` solves for x.

Conductance: g = 1 / (r_on x + r_off (1 - x)) in [1/r_off, 1/r_on]; the state<->conductance map
follows the I-V relation above (MemTorch 1.1.6's ``set_conductance`` uses its inverse).

Defaults (MemTorch 1.1.6, ``memtorch/bh/memristor/LinearIonDrift.py``): time_series_resolution
1e-4 s, u_v 1e-14 m^2/(V s), d 10e-9 m, r_on 100 Ω, r_off 16 kΩ, write thresholds ±0.55 V,
window exponent p = 1 (MemTorch's Joglekar p; j = 1 for Prodromakis, Prodromakis et al. 2011).
Hysteresis demo: 5 V, 2.5 Hz sine over 4 s.

Programming defaults (memcc's choice): from the middle conductance, SET +1 V and RESET -1 V pulses
with adaptive widths starting at 100 ns (a 0.2 % resistance change near R_on), doubling while a
device keeps moving the same way and halving after an overshoot (1 ns to 1.7 s): the conductance
change per unit charge spans four decades over the range, which no fixed pulse covers. Without a
window the pulses are integrated exactly (:meth:`exact_pulse`), so widths below the 1e-4 s time
step are exact too; with a window they are stepped.
"""

from __future__ import annotations

import numpy as np

from memcc.devices import windows as W
from memcc.devices.model import DeviceModel, LinearIV, Param


class LinearIonDrift(LinearIV, DeviceModel):
    name = "linear_ion_drift"
    summary = "Linear ion drift memristor (Strukov et al. 2008) with Joglekar/Biolek/Prodromakis windows"
    state_name = "x = w/D"
    state_unit = ""
    PARAMETERS = (
        Param("time_series_resolution", 1e-4, "s", "time step of the state equation", check="positive"),
        Param("u_v", 1e-14, "m^2/(V s)", "dopant mobility mu_v", check="positive"),
        Param("d", 10e-9, "m", "device length D", check="positive"),
        Param("r_on", 100.0, "ohm", "ON (smallest) resistance", check="positive"),
        Param("r_off", 16e3, "ohm", "OFF (largest) resistance", check="positive"),
        Param("pos_write_threshold", 0.55, "V", "state moves only for v >= this (SET side)", check="nonneg"),
        Param("neg_write_threshold", -0.55, "V", "state moves only for v <= this (RESET side)"),
        Param("window", "none", "", "window function", kind="choice", choices=W.WINDOWS),
        Param("p", 1.0, "", "window exponent (Joglekar/Biolek: positive integer)", check="positive"),
        Param("j", 1.0, "", "Prodromakis window scale", check="prob"),
    )
    IV_DEFAULTS = {"amplitude": 5.0, "frequency": 2.5, "duration": 4.0, "initial": "mid"}
    PROGRAMMING_DEFAULTS = {"set_voltage": 1.0, "reset_voltage": -1.0, "pulse_width": 1e-7, "initial": "mid",
                            "adaptive": True, "max_doublings": 24, "min_pulse_width": 1e-9}

    def _derive(self, p):
        super()._derive(p)
        if np.any(np.asarray(p["neg_write_threshold"]) > 0):
            from memcc.devices.parameters import ParameterError

            raise ParameterError(f"device {self.name!r}: neg_write_threshold must be <= 0 V")
        p["_k"] = p["u_v"] * p["r_on"] / (p["d"] * p["d"])  # dx/dt per ampere
        p["_dr"] = p["r_off"] - p["r_on"]
        m = W.TERMINAL_MARGIN if W.vanishes_at_bounds(p["window"]) else 0.0
        p["_lo"], p["_hi"] = m, 1.0 - m

    @property
    def set_threshold(self):
        return self._need()["pos_write_threshold"]

    @property
    def reset_threshold(self):
        return self._need()["neg_write_threshold"]

    def state_bounds(self):
        p = self._need()
        return p["_lo"], p["_hi"]

    def resistance(self, state):
        p = self._need()
        return p["r_off"] - p["_dr"] * state

    def state_for_conductance(self, g):
        p = self._need()
        g = np.clip(np.asarray(g, dtype=float), 1.0 / p["r_off"], 1.0 / p["r_on"])
        return np.clip((p["r_off"] - 1.0 / g) / p["_dr"], p["_lo"], p["_hi"])

    def _active(self, v):
        p = self._need()
        v = np.asarray(v, dtype=float)
        return (v >= p["pos_write_threshold"]) & (v != 0) | (v <= p["neg_write_threshold"]) & (v != 0)

    def rate_from_current(self, state, i):
        """dx/dt for current ``i`` (thresholds not applied): u_v r_on / d^2 * i * f(x, i)."""
        p = self._need()
        state = np.asarray(state, dtype=float)
        i = np.asarray(i, dtype=float)
        if p["window"] == "none":
            f = 1.0
        else:
            f = W.evaluate(p["window"], state, direction=i, p=p["p"], j=p["j"])
        return p["_k"] * i * f

    def rate(self, state, v):
        state = np.asarray(state, dtype=float)
        i = self.current(state, v)
        return np.where(self._active(v), self.rate_from_current(state, i), 0.0)

    def exact_pulse(self, state, v, width):
        p = self._need()
        if p["window"] != "none":
            return None
        x = np.asarray(state, dtype=float)
        v = np.asarray(v, dtype=float)
        r_off, dr = p["r_off"], p["_dr"]
        q = r_off * x - 0.5 * dr * x * x + np.where(self._active(v), p["_k"] * v * width, 0.0)
        disc = np.maximum(r_off * r_off - 2.0 * dr * q, 0.0)
        # x = (r_off - sqrt(disc)) / dr, written stably: 2q / (r_off + sqrt(disc))
        xn = 2.0 * q / (r_off + np.sqrt(disc))
        return np.clip(xn, p["_lo"], p["_hi"])
