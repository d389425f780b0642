"""Data-driven ReRAM model (the 2021 variant).

Messaoudi, Lammie, Rahimi Azghadi et al.: the data-driven Verilog-A ReRAM model fitted to measured
devices (ISCAS 2019 / TCAS-II; the 2021 update, arXiv:2012.02267, returns to the simpler 2017
state equation), as implemented in MemTorch 1.1.6 (``memtorch/bh/memristor/Data_Driven2021.py``).
The state is the resistance R in [r_on, r_off]. For a voltage V > 0 (set, "p") or V < 0 (reset, "n"):

    s(V)  = A (exp(|V| / t) - 1)                      switching speed (A_p, t_p / A_n, t_n)
    r(V)  = a0 + a1 V                                 voltage-dependent resistance bound
    dR/dt = s(V) (r(V) - R)^2

With A_p > 0, t_p < 0 the set speed is negative: R falls towards r_p(V) and never below it; with
A_n < 0, t_n < 0 the reset speed is positive: R rises towards r_n(V) and never above it. Positive
voltages therefore SET the device (memcc's convention, :mod:`memcc.devices.model`); there is no
sharp threshold, but a set pulse only acts on devices with R > r_p(V) and a reset pulse on devices
with R < r_n(V), so the amplitude decides how far a pulse train can move R. Over a step dt at
constant V the state equation is solved exactly (MemTorch's implicit update):

    R' = (R + s r (r - R) dt) / (1 + s (r - R) dt),

then clipped to [r_on, r_off]; R is left unchanged when it is already beyond r(V). Because this
is the exact solution, a constant-voltage pulse of any width is one update (identical to stepping
at time_series_resolution).

I-V: I = a_p G sinh(b_p V) for V > 0 and a_n G sinh(b_n V) for V <= 0, G = 1/R. memcc's
``conductance(state)`` is the state's G = 1/R in [1/r_off, 1/r_on] (MemTorch's ``g``); the
small-signal slope of the I-V curve at 0 V is a·b·G (0.87·G with the defaults).

Defaults (MemTorch 1.1.6 ``Data_Driven2021``, "determined experimentally"): time_series_resolution
1e-10 s, r_off 3000 Ω, r_on 1600 Ω, A_p 600.10075, A_n -34.5988399, t_p -0.0212028 V,
t_n -0.05343997 V, r_p = [a0_p, a1_p] = [2699.2336 Ω, -672.930205 Ω/V],
r_n = [a0_n, a1_n] = [649.413746 Ω, -1474.32358 Ω/V], a_p = a_n = 0.32046175,
b_p = b_n = 2.71689828 1/V. (MemTorch's k_p, k_n are not used by the 2021 equations and are
omitted.) Hysteresis demo (MemTorch): 1.5 V, 10 kHz sine over 1 ms.

Programming defaults (memcc's choice): from the OFF state, SET +1.7 V (r_p = 1555 Ω < r_on) and
RESET -1.7 V (r_n = 3156 Ω > r_off) pulses of 100 ns.
"""

from __future__ import annotations

import numpy as np

from memcc.devices.model import DeviceModel, Param


class DataDriven(DeviceModel):
    name = "data_driven"
    summary = "Data-driven ReRAM model (Messaoudi et al., 2021 variant as in MemTorch)"
    state_name = "R"
    state_unit = "ohm"
    PARAMETERS = (
        Param("time_series_resolution", 1e-10, "s", "time step of the state equation", check="positive"),
        Param("r_off", 3000.0, "ohm", "OFF (largest) resistance", check="positive"),
        Param("r_on", 1600.0, "ohm", "ON (smallest) resistance", check="positive"),
        Param("A_p", 600.10075, "1/(ohm s)", "set speed amplitude"),
        Param("A_n", -34.5988399, "1/(ohm s)", "reset speed amplitude"),
        Param("t_p", -0.0212028, "V", "set speed voltage scale", check="nonzero"),
        Param("t_n", -0.05343997, "V", "reset speed voltage scale", check="nonzero"),
        Param("a0_p", 2699.2336, "ohm", "set bound r_p(V) = a0_p + a1_p V: intercept"),
        Param("a1_p", -672.930205, "ohm/V", "set bound r_p(V): slope"),
        Param("a0_n", 649.413746, "ohm", "reset bound r_n(V) = a0_n + a1_n V: intercept"),
        Param("a1_n", -1474.32358, "ohm/V", "reset bound r_n(V): slope"),
        Param("a_p", 0.32046175, "", "I-V amplitude, V > 0", check="positive"),
        Param("a_n", 0.32046175, "", "I-V amplitude, V <= 0", check="positive"),
        Param("b_p", 2.71689828, "1/V", "I-V nonlinearity, V > 0", check="positive"),
        Param("b_n", 2.71689828, "1/V", "I-V nonlinearity, V <= 0", check="positive"),
    )
    IV_DEFAULTS = {"amplitude": 1.5, "frequency": 10e3, "duration": 1e-3, "initial": "on"}
    PROGRAMMING_DEFAULTS = {"set_voltage": 1.7, "reset_voltage": -1.7, "pulse_width": 1e-7, "initial": "off"}

    @property
    def set_threshold(self):
        # no sharp threshold: the smallest voltage whose set bound r_p(V) lies below r_off
        p = self._need()
        return np.maximum((p["a0_p"] - p["r_off"]) / -p["a1_p"], 0.0)

    @property
    def reset_threshold(self):
        p = self._need()
        return np.minimum((p["r_on"] - p["a0_n"]) / p["a1_n"], 0.0)

    def state_bounds(self):
        p = self._need()
        return p["r_on"], p["r_off"]

    def conductance(self, state, v_read=None):
        return 1.0 / np.asarray(state, dtype=float)

    def current(self, state, v):
        p = self._need()
        v = np.asarray(v, dtype=float)
        g = 1.0 / np.asarray(state, dtype=float)
        return np.where(v > 0, p["a_p"] * g * np.sinh(p["b_p"] * v), p["a_n"] * g * np.sinh(p["b_n"] * v))

    def state_for_conductance(self, g):
        p = self._need()
        g = np.clip(np.asarray(g, dtype=float), 1.0 / p["r_off"], 1.0 / p["r_on"])
        return np.clip(1.0 / g, p["r_on"], p["r_off"])

    def _speed_bound(self, v):
        p = self._need()
        v = np.asarray(v, dtype=float)
        pos = v > 0
        a0 = np.where(pos, p["a0_p"], p["a0_n"])
        a1 = np.where(pos, p["a1_p"], p["a1_n"])
        amp = np.where(pos, p["A_p"], p["A_n"])
        tau = np.where(pos, p["t_p"], p["t_n"])
        return amp * np.expm1(np.abs(v) / tau), a0 + a1 * v, pos

    def rate(self, state, v):
        R = np.asarray(state, dtype=float)
        v = np.asarray(v, dtype=float)
        s, r, pos = self._speed_bound(v)
        moving = np.where(pos, R > r, R < r) & (v != 0)
        return np.where(moving, s * (r - R) ** 2, 0.0)

    def step(self, state, v, dt=None):
        dt = self.dt if dt is None else dt
        return self._update(state, v, dt)

    def exact_pulse(self, state, v, width):
        return self._update(state, v, width)

    def _update(self, state, v, dt):
        p = self._need()
        R = np.asarray(state, dtype=float)
        v = np.asarray(v, dtype=float)
        s, r, pos = self._speed_bound(v)
        moving = np.where(pos, R > r, R < r) & (v != 0)
        u = r - R
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            new = (R + s * r * u * dt) / (1.0 + s * u * dt)
        new = np.where(moving, new, R)
        return np.clip(new, p["r_on"], p["r_off"])
