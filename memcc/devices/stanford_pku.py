"""Stanford-PKU RRAM model (filament gap dynamics, with Joule heating).

Jiang, Stanford, Wong et al., "A compact model for metal-oxide resistive random access memory
with experiment verification", IEEE Trans. Electron Devices 63(5) (2016) 1884-1892 (and the
SISPAD 2014 paper by the same group; the Verilog-A release at nano.stanford.edu/stanford-rram-model).
The state is the gap g between the filament tip and the electrode:

    I(g, V)  = I_0 exp(-g/g_0) sinh(V/V_0)
    dg/dt    = -vel_0 exp(-q E_a / (k_B T)) sinh(gamma a_0 q V / (t_ox k_B T))  [+ noise]
    T        = T_init + |I V| R_th
    gamma    = gamma_init - beta (g / 1 nm)^3,   taken as 0 when gamma |V| / t_ox < F_min

A positive voltage shrinks the gap and raises the current (SET; memcc's convention, see
:mod:`memcc.devices.model`); the F_min condition is a gap-dependent threshold,
|V| >= F_min t_ox / gamma(g) (about 1.05 V at the smallest gap, 1.39 V at the largest with the
defaults). The gap is clipped to [gap_min, gap_max], the gaps whose read conductance
I(g, read_voltage)/read_voltage is 1/r_on and 1/r_off; so conductances read at ``read_voltage``
lie in [1/r_off, 1/r_on]. Integration: forward Euler on g, with the temperature from the current
at the start of the step.

Noise: with ``model_switch = 1`` the rate gets the term
delta_g_init * N(0, 1) / (1 + exp((T_crit - T) / T_smth)) (the model's "dynamic" variant; drawn
from the ``rng`` given to :meth:`step`). Off by default, as in MemTorch.

Defaults (MemTorch 1.1.6, ``memtorch/bh/memristor/Stanford_PKU.py``): r_off 218586 Ω, r_on 542 Ω,
gap_init 2e-10 m, g_0 0.25e-9 m, V_0 0.25 V, I_0 1e-3 A, read_voltage 0.1 V, T_init 298 K,
R_th 2.1e3 K/W, gamma_init 16, beta 0.8, t_ox 12e-9 m, F_min 1.4e9 V/m, vel_0 10 m/s, E_a 0.6 eV,
a_0 0.25e-9 m, delta_g_init 0.02, model_switch 0, T_crit 450 K, T_smth 500 K. Physical constants:
q = 1.602176634e-19 C, k_B = 1.380649e-23 J/K (CODATA 2018).

Time step: MemTorch's time_series_resolution is 1e-4 s, made for its 10 Hz sweeps, at which any
above-threshold step moves the gap across its whole range. Switching in this model takes
nanoseconds (Jiang et al. use ns pulses), so memcc's default is 1e-10 s; the hysteresis demo
keeps MemTorch's 1.5 V amplitude at 10 MHz (MemTorch: 10 Hz with 1e-4 s steps).

Programming defaults (memcc's choice): from the ON state, RESET -1.55 V (beyond the threshold at
the largest gap, 1.39 V, by enough that devices reach 1/r_off itself: at -1.45 V the RESET rate
vanishes about 40 % above g_off, so targets at g_off, half the devices of a double-column layer,
never converged) and SET +1.2 V pulses starting at 0.2 ns (two steps), widths adapted per device
between 0.1 ns and 0.8 ns (doubling while a device keeps moving the same way, halving after an
overshoot): SET is abrupt (Joule heating), so fixed pulses leave ~1 % of devices oscillating
around their target.
"""

from __future__ import annotations

import numpy as np

from memcc.devices.model import DeviceModel, Param, value_range
from memcc.devices.parameters import ParameterError

Q_E = 1.602176634e-19
K_B = 1.380649e-23


class StanfordPKU(DeviceModel):
    name = "stanford_pku"
    summary = "Stanford-PKU metal-oxide RRAM (Jiang et al. 2016): filament-gap dynamics with Joule heating"
    state_name = "gap"
    state_unit = "m"
    PARAMETERS = (
        Param("time_series_resolution", 1e-10, "s", "time step of the state equation", check="positive"),
        Param("r_off", 218586.0, "ohm", "OFF resistance at read_voltage", check="positive"),
        Param("r_on", 542.0, "ohm", "ON resistance at read_voltage", check="positive"),
        Param("gap_init", 2e-10, "m", "initial gap of iv_loop's 'init' state", check="positive"),
        Param("g_0", 0.25e-9, "m", "gap decay length of the current", check="positive"),
        Param("V_0", 0.25, "V", "voltage scale of the current", check="positive"),
        Param("I_0", 1e-3, "A", "current scale", check="positive"),
        Param("read_voltage", 0.1, "V", "voltage at which conductance is read", check="positive"),
        Param("T_init", 298.0, "K", "ambient temperature", check="positive"),
        Param("R_th", 2.1e3, "K/W", "thermal resistance", check="nonneg"),
        Param("gamma_init", 16.0, "", "field enhancement factor at zero gap", check="positive"),
        Param("beta", 0.8, "", "gap dependence of gamma", check="nonneg"),
        Param("t_ox", 12e-9, "m", "oxide thickness", check="positive"),
        Param("F_min", 1.4e9, "V/m", "minimum field for gap change", check="nonneg"),
        Param("vel_0", 10.0, "m/s", "gap velocity scale", check="positive"),
        Param("E_a", 0.6, "eV", "activation energy", check="positive"),
        Param("a_0", 0.25e-9, "m", "atomic hopping distance", check="positive"),
        Param("delta_g_init", 0.02, "m/s", "noise amplitude (model_switch = 1)", check="nonneg"),
        Param("model_switch", 0.0, "", "0: standard model, 1: with gap noise", kind="int", check="nonneg"),
        Param("T_crit", 450.0, "K", "temperature above which noise grows", check="positive"),
        Param("T_smth", 500.0, "K", "smoothness of the noise activation", check="positive"),
    )
    IV_DEFAULTS = {"amplitude": 1.5, "frequency": 10e6, "duration": 2e-7, "initial": "init"}
    PROGRAMMING_DEFAULTS = {"set_voltage": 1.2, "reset_voltage": -1.55, "pulse_width": 2e-10, "initial": "on",
                            "adaptive": True, "max_doublings": 2}

    def _derive(self, p):
        super()._derive(p)
        if np.any(np.asarray(p["model_switch"]) > 1):
            raise ParameterError(f"device {self.name!r}: model_switch must be 0 or 1")
        vr = p["read_voltage"]
        scale = p["I_0"] * np.sinh(vr / p["V_0"]) / vr  # conductance at zero gap
        gmin = p["g_0"] * np.log(scale * p["r_on"])
        gmax = p["g_0"] * np.log(scale * p["r_off"])
        if np.any(np.asarray(gmin) <= 0):
            raise ParameterError(
                f"device {self.name!r}: r_on is too small for I_0, V_0 and read_voltage (the ON gap would be <= 0)"
            )
        p["_gmin"], p["_gmax"], p["_gscale"] = gmin, gmax, scale

    def resistance_limits(self):
        """r_on must exceed 1/scale = read_voltage / (I_0 sinh(read_voltage / V_0)), the read
        resistance at zero gap: below it the ON gap g_0 ln(scale r_on) would be <= 0 (`_derive`).
        With I_0, V_0 or read_voltage stochastic, the worst case over their ranges (1/scale
        grows as I_0 and read_voltage shrink and as V_0 grows); left out when unbounded."""
        limits = super().resistance_limits()
        v = self._values
        i0, v0, vr = (np.float64(value_range(v[k])[i]) for k, i in (("I_0", 0), ("V_0", 1), ("read_voltage", 0)))
        with np.errstate(all="ignore"):
            if vr > 0:
                r_min = 1.0 / (i0 * np.sinh(vr / v0) / vr)  # the same expression as _derive's scale
            else:  # read voltages down to 0: the limit vr -> 0 of vr / (I_0 sinh(vr / V_0))
                r_min = v0 / i0
        if i0 > 0 and np.isfinite(r_min) and r_min > 0:
            limits["r_on"] = (float(r_min), limits["r_on"][1])
        return limits

    @property
    def set_threshold(self):
        p = self._need()
        return p["F_min"] * p["t_ox"] / p["gamma_init"]

    @property
    def reset_threshold(self):
        return -self.set_threshold

    def state_bounds(self):
        p = self._need()
        return p["_gmin"], p["_gmax"]

    def initial_state(self, which="off", n=None):
        if isinstance(which, str) and which == "init":
            p = self._need()
            n = n if n is not None else (self._n or 1)
            return np.broadcast_to(np.clip(p["gap_init"], p["_gmin"], p["_gmax"]), (n,)).astype(float).copy()
        return super().initial_state(which, n)

    def current(self, state, v):
        p = self._need()
        return p["I_0"] * np.exp(-np.asarray(state, dtype=float) / p["g_0"]) * np.sinh(np.asarray(v, float) / p["V_0"])

    def conductance(self, state, v_read=None):
        p = self._need()
        if v_read is None:
            return p["_gscale"] * np.exp(-np.asarray(state, dtype=float) / p["g_0"])
        return self.current(state, v_read) / v_read

    def state_for_conductance(self, g):
        p = self._need()
        g = np.clip(np.asarray(g, dtype=float), 1.0 / p["r_off"], 1.0 / p["r_on"])
        return np.clip(p["g_0"] * np.log(p["_gscale"] / g), p["_gmin"], p["_gmax"])

    def rate(self, state, v, rng=None):
        p = self._need()
        g = np.asarray(state, dtype=float)
        v = np.asarray(v, dtype=float)
        temp = p["T_init"] + np.abs(self.current(g, v) * v) * p["R_th"]
        gn = g * 1e9
        gamma = p["gamma_init"] - p["beta"] * gn * gn * gn
        gamma = np.where(gamma * np.abs(v) / p["t_ox"] < p["F_min"], 0.0, gamma)
        kt = K_B * temp
        arg = np.clip(gamma * p["a_0"] / p["t_ox"] * Q_E * v / kt, -700.0, 700.0)
        dg = -p["vel_0"] * np.exp(-Q_E * p["E_a"] / kt) * np.sinh(arg)
        if np.any(np.asarray(p["model_switch"]) == 1):
            rng = rng if rng is not None else np.random.default_rng()
            noise = rng.standard_normal(np.shape(dg)) * p["delta_g_init"] * p["model_switch"]
            dg = dg + noise / (1.0 + np.exp((p["T_crit"] - temp) / p["T_smth"]))
        return dg

    def step(self, state, v, dt=None, rng=None):
        p = self._need()
        dt = self.dt if dt is None else dt
        state = np.asarray(state, dtype=float)
        return np.clip(state + self.rate(state, v, rng) * dt, p["_gmin"], p["_gmax"])

    @property
    def zero_voltage_is_idle(self):
        return not np.any(np.asarray(self._need()["model_switch"]) == 1)
