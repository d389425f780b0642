"""VTEAM: the Voltage ThrEshold Adaptive Memristor model.

Kvatinsky, Ramadan, Friedman & Kolodny, "VTEAM: a general model for voltage-controlled
memristors", IEEE Trans. Circuits Syst. II 62(8) (2015) 786-790. State x in [x_on, x_off]:

    dx/dt = k_off (u/v_off - 1)^alpha_off f_off(x)   if 0 < v_off < u
          = 0                                         if v_on <= u <= v_off
          = k_on  (u/v_on - 1)^alpha_on  f_on(x)      if u < v_on < 0

with k_off > 0 and k_on < 0, and the linear I-V relation (Kvatinsky eq. 4, the one MemTorch uses)

    R(x) = r_on + (r_off - r_on) (x - x_on) / (x_off - x_on),     i = v / R(x).

Polarity. In the paper (and in MemTorch) ``u`` is the voltage across the device, and a negative
``u`` below ``v_on`` turns it ON. memcc's convention is that positive voltages SET every device
(see :mod:`memcc.devices.model`), so the memcc VTEAM device is mounted in reverse: ``u = -v`` for
the applied voltage ``v``. Its SET threshold is therefore ``-v_on`` (0.2 V by default) and its
RESET threshold ``-v_off`` (-0.02 V). The parameters keep their published names and signs.

Windows: ``window = none`` (f_on = f_off = 1, the simplest VTEAM form and MemTorch's; the state is
clipped to [x_on, x_off]) or ``joglekar``/``biolek``/``prodromakis`` (see
:mod:`memcc.devices.windows`) on the normalised state (x - x_on)/(x_off - x_on), with exponent
``p`` and scale ``j``. Without a window the rate does not depend on the state, so a constant-voltage
pulse is integrated exactly in one step (identical to stepping at time_series_resolution).

Defaults (MemTorch 1.1.6, ``memtorch/bh/memristor/VTEAM.py``): time_series_resolution 1e-10 s,
r_off 1000 Ω, r_on 50 Ω, d 3e-9 m, k_on -10 m/s, k_off 5e-4 m/s, alpha_on 3, alpha_off 1,
v_on -0.2 V, v_off 0.02 V, x_on 0, x_off 3e-9 m. ``d`` (device length) is kept for compatibility;
the state range is [x_on, x_off] (MemTorch clips to [0, d], the same range with its defaults).
Window exponent p = 1 and j = 1 are the window papers' basic choices.
Hysteresis demo (MemTorch): 1 V, 50 MHz sine over 200 ns, starting at x_on (R_on).

Programming defaults (memcc's choice, see :mod:`memcc.programming`): SET pulses +0.25 V × 2 ns
move x by ~10 % of its range (coarse), RESET pulses -0.1 V × 4 ns by ~0.3 % (fine), so a device
approaching its target by SET pulses and overshooting comes back within 5 % in a few RESET pulses.
"""

from __future__ import annotations

import numpy as np

from memcc.devices import windows as W
from memcc.devices.model import DeviceModel, LinearIV, Param
from memcc.devices.parameters import ParameterError


def _pow(base, alpha):
    if np.ndim(alpha) == 0:
        a = float(alpha)
        if a == 1.0:
            return base
        if a == 2.0:
            return base * base
        if a == 3.0:
            return base * base * base
    return base ** alpha


class VTEAM(LinearIV, DeviceModel):
    name = "vteam"
    summary = "VTEAM voltage-threshold memristor (Kvatinsky et al. 2015), linear I-V"
    state_name = "x"
    state_unit = "m"
    PARAMETERS = (
        Param("time_series_resolution", 1e-10, "s", "time step of the state equation", check="positive"),
        Param("r_off", 1000.0, "ohm", "OFF (largest) resistance", check="positive"),
        Param("r_on", 50.0, "ohm", "ON (smallest) resistance", check="positive"),
        Param("d", 3e-9, "m", "device length (informational; state range is [x_on, x_off])", check="positive"),
        Param("k_on", -10.0, "m/s", "ON switching rate constant (< 0)", check="negative"),
        Param("k_off", 5e-4, "m/s", "OFF switching rate constant (> 0)", check="positive"),
        Param("alpha_on", 3.0, "", "ON switching exponent", check="positive"),
        Param("alpha_off", 1.0, "", "OFF switching exponent", check="positive"),
        Param("v_on", -0.2, "V", "ON threshold in the paper's orientation (< 0); memcc SET threshold is -v_on",
              check="negative"),
        Param("v_off", 0.02, "V", "OFF threshold in the paper's orientation (> 0); memcc RESET threshold is -v_off",
              check="positive"),
        Param("x_on", 0.0, "m", "state at R_on"),
        Param("x_off", 3e-9, "m", "state at R_off"),
        Param("window", "none", "", "window function", kind="choice", choices=W.WINDOWS),
        Param("p", 1.0, "", "window exponent", check="positive"),
        Param("j", 1.0, "", "Prodromakis window scale", check="prob"),
    )
    IV_DEFAULTS = {"amplitude": 1.0, "frequency": 50e6, "duration": 200e-9, "initial": "on"}
    PROGRAMMING_DEFAULTS = {"set_voltage": 0.25, "reset_voltage": -0.1, "pulse_width": 2e-9,
                            "reset_pulse_width": 4e-9, "initial": "off"}

    def _derive(self, p):
        super()._derive(p)
        span = np.asarray(p["x_off"]) - np.asarray(p["x_on"])
        if np.any(span <= 0):
            raise ParameterError(f"device {self.name!r}: x_off must be larger than x_on")
        p["_span"] = p["x_off"] - p["x_on"]
        p["_slope"] = (p["r_off"] - p["r_on"]) / p["_span"]  # ohm per metre

    # thresholds in memcc's convention (u = -v)
    @property
    def set_threshold(self):
        return -self._need()["v_on"]

    @property
    def reset_threshold(self):
        return -self._need()["v_off"]

    def state_bounds(self):
        p = self._need()
        return p["x_on"], p["x_off"]

    def resistance(self, state):
        p = self._need()
        return p["r_on"] + p["_slope"] * (state - p["x_on"])

    def state_for_conductance(self, g):
        p = self._need()
        g = np.clip(np.asarray(g, dtype=float), 1.0 / p["r_off"], 1.0 / p["r_on"])
        x = p["x_on"] + (1.0 / g - p["r_on"]) / p["_slope"]
        return np.clip(x, p["x_on"], p["x_off"])

    def _drive(self, v):
        """Window-free rate dx/dt at applied voltage v (model voltage u = -v)."""
        p = self._need()
        u = -np.asarray(v, dtype=float)
        off = np.maximum(u / p["v_off"] - 1.0, 0.0)
        on = np.maximum(u / p["v_on"] - 1.0, 0.0)
        return p["k_off"] * _pow(off, p["alpha_off"]) + p["k_on"] * _pow(on, p["alpha_on"])

    def rate(self, state, v):
        p = self._need()
        r = self._drive(v)
        if p["window"] == "none":
            return r * np.ones_like(np.asarray(state, dtype=float))
        xn = (np.asarray(state, dtype=float) - p["x_on"]) / p["_span"]
        return r * W.evaluate(p["window"], xn, direction=r, p=p["p"], j=p["j"])

    def step(self, state, v, dt=None):
        p = self._need()
        dt = self.dt if dt is None else dt
        state = np.asarray(state, dtype=float)
        if p["window"] in ("joglekar", "prodromakis"):
            # keep clear of the bounds, where these windows vanish (terminal state problem)
            m = W.TERMINAL_MARGIN * p["_span"]
            return np.clip(state + self.rate(state, v) * dt, p["x_on"] + m, p["x_off"] - m)
        return np.clip(state + self.rate(state, v) * dt, p["x_on"], p["x_off"])

    def exact_pulse(self, state, v, width):
        p = self._need()
        if p["window"] != "none":
            return None
        # state-independent rate: n Euler steps (with clipping) equal one step of n*dt
        return np.clip(np.asarray(state, dtype=float) + self._drive(v) * width, p["x_on"], p["x_off"])
