"""The `ideal` device: linear I-V (I = G·V) and continuous conductances in [1/r_off, 1/r_on].

No switching dynamics, no finite states, no variability: a programmed conductance is exactly the
mapped value, so a compiled model computes the original layer up to float rounding (and to the
DAC/ADC quantization the user asks for).

Defaults: r_on = 1 kΩ and r_off = 100 kΩ, an ON/OFF ratio of 100. These are round values of the
order reported for filamentary HfO2/TaOx RRAM cells (LRS of a few kΩ, HRS tens to hundreds of kΩ;
e.g. the Stanford-PKU model's defaults in MemTorch are r_on 542 Ω, r_off 218.6 kΩ). For the ideal
device the window only sets the unit of the stored conductances: the mapping is linear, so results
do not depend on it.
"""

from __future__ import annotations

from dataclasses import dataclass

from memcc.devices.base import Device
from memcc.devices.registry import register_device


@register_device("ideal")
@dataclass(frozen=True)
class IdealDevice(Device):
    """Linear, continuous-conductance device (see the module docstring)."""

    name = "ideal"
    r_on: float = 1e3
    r_off: float = 1e5
