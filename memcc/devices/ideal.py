"""The `ideal` device: linear I-V (I = G·V) and continuous conductances in [1/r_off, 1/r_on].

A :class:`~memcc.devices.model.DeviceModel` like the physical models, so that it is looked up,
parameterised (numbers or distributions) and programmed the same way, but without switching
dynamics: its state *is* its conductance (siemens), voltage pulses leave it unchanged, and it is
programmed by setting every device directly to its target (``programming="ideal"``, the only
method it supports). With fixed parameters a compiled model therefore computes the original
layer up to float rounding (and to the DAC/ADC quantization the user asks for). With ``r_on`` or
``r_off`` given as a distribution each device gets its own window, and a target outside it is
clipped to the nearest bound (device-to-device variability without dynamics).

Defaults: r_on = 1 kΩ and r_off = 100 kΩ, an ON/OFF ratio of 100. These are round values of the
order reported for filamentary HfO2/TaOx RRAM cells (LRS of a few kΩ, HRS tens to hundreds of kΩ;
e.g. the Stanford-PKU model's defaults in MemTorch are r_on 542 Ω, r_off 218.6 kΩ). For the ideal
device the window only sets the unit of the stored conductances: the mapping is linear, so results
do not depend on it.
"""

from __future__ import annotations

import math

import numpy as np

from memcc.devices.model import DeviceModel, Param
from memcc.devices.registry import register_device


@register_device("ideal")
class IdealDevice(DeviceModel):
    """Linear, continuous-conductance device without dynamics (see the module docstring)."""

    name = "ideal"
    summary = "ideal linear device: conductance set exactly to target, no switching dynamics"
    state_name = "G"
    state_unit = "S"
    PARAMETERS = (
        Param("r_on", 1e3, "ohm", "ON (smallest) resistance", check="positive"),
        Param("r_off", 1e5, "ohm", "OFF (largest) resistance", check="positive"),
    )
    IV_DEFAULTS = {"amplitude": 1.0, "frequency": 1.0, "duration": 1.0, "initial": "mid"}
    PROGRAMMING_DEFAULTS: dict = {}
    #: No variability unless asked for: `ideal` is the reference that reproduces the original model.
    D2D_STD = 0.0
    #: Programming methods this device supports (`memcc.programming`); the first is the default.
    PROGRAMMING_METHODS = ("ideal",)

    @property
    def dt(self) -> float:
        """No dynamics: a nominal time step, only used by sweeps such as `iv_loop`; 1 ms samples
        the default 1 Hz sine a thousand times a period (a line through the origin)."""
        return 1e-3

    @property
    def set_threshold(self):
        return math.inf  # no voltage changes the state

    @property
    def reset_threshold(self):
        return -math.inf

    def state_bounds(self):
        return self.g_off, self.g_on

    def conductance(self, state, v_read=None):
        return np.asarray(state, dtype=float)

    def current(self, state, v):
        return np.asarray(state, dtype=float) * np.asarray(v, dtype=float)

    def state_for_conductance(self, g):
        return np.clip(np.asarray(g, dtype=float), self.g_off, self.g_on)

    def rate(self, state, v):
        return np.zeros(np.broadcast(np.asarray(state), np.asarray(v)).shape)

    def exact_pulse(self, state, v, width):
        return np.array(np.broadcast_to(np.asarray(state, dtype=float), np.broadcast(np.asarray(state), np.asarray(v)).shape))
