"""`Endurance`: the conductance window closes with the number of cycles a device has seen.

Law: the gradual-degradation mode of the empirical metal-oxide RRAM endurance model of
C. Lammie, M. Rahimi Azghadi and D. Ielmini, "Empirical metal-oxide RRAM device endurance and
retention model for deep learning simulations", Semicond. Sci. Technol. 36, 065003 (2021) (the
model behind MemTorch's `apply_endurance_model`). Up to a threshold number of cycles n_th the
LRS and HRS resistances are stable; beyond it each follows a power law of the cycle count (a
straight line in log R vs. log n), the LRS resistance rising and the HRS resistance falling
until they meet:

    R_on(n)  = r_on  · (n / n_th)^a_on      for n > n_th (a_on  > 0), else r_on
    R_off(n) = r_off · (n / n_th)^a_off     for n > n_th (a_off < 0), else r_off

both clamped at the convergence resistance r_c = sqrt(r_on · r_off) (the geometric middle of
the device's own window; the window is closed there). In conductances, g_on(n) = 1/R_on(n),
g_off(n) = 1/R_off(n).

Defaults: the fit of the TiN/Hf(Al)O/Hf/TiN devices of the paper's Fig. 2(A) as used for its
DNN simulations (SST-Reproducibility, simulate_6A.py: cell size 10 nm, v_stop at its optimum
1.5 V): n_th = p_0 · exp(p_1 · 10) = 10 · exp(6.9078) = 1e4 cycles, a_on = p_2,LRS · 10 =
0.1217, a_off = p_2,HRS · 10 = -0.1586.

Cycle count of each device: ``cycles`` (prior use, e.g. 1e6 write cycles of earlier training or
reprogramming, given by the user) plus the pulses the device took in `ProgramDevices` (naive
programming; 0 for ideal programming). Every programming pulse counts as one cycle, an upper
bound of the switching events it causes.

Each device's conductance g is mapped linearly from its fresh window [g_off, g_on] onto its
degraded window [g_off(n), g_on(n)]:

    g' = g_off(n) + (g - g_off) · (g_on(n) - g_off(n)) / (g_on - g_off)

so relative positions (and finite-state levels applied before) are kept. Conductances outside
the fresh window by more than float32 rounding (e.g. unformed devices of an earlier `faults`
pass) are left unchanged: such a device does not switch. Apply `faults` after `endurance` if
stuck devices should keep their fresh g_on/g_off.

Given once per compilation (`REPEATABLE` False): a second pass would shrink the already shrunk
window again from the fresh one's position, which no cycle count gives (cycles add up: give one
pass with the total). Given with no parameters, or with ``count_programming=false`` and no
``cycles``, it would do nothing (or count only the programming pulses, which rarely pass the
threshold), so it is refused: give ``cycles``.

Statistics per layer: mean_cycles, max_cycles, n_degraded (devices past n_th),
mean_window_shrink (mean of 1 - new width / fresh width), max_window_shrink, n_devices,
n_changed, weight_error.
"""

from __future__ import annotations

import numpy as np

from .base import LayerDevicesView, NonidealityPass, fail, number_arg

#: Lammie, Rahimi Azghadi & Ielmini 2021, Fig. 2(A) devices (see the module docstring).
DEFAULT_THRESHOLD = 1e4
DEFAULT_A_ON = 0.12171029136082496
DEFAULT_A_OFF = -0.15855563129903612

#: relative slack for "inside the fresh window" (float32 storage of G)
_SLACK = 1e-6


def degraded_window(g_off, g_on, cycles, *, threshold: float = DEFAULT_THRESHOLD,
                    a_on: float = DEFAULT_A_ON, a_off: float = DEFAULT_A_OFF):
    """(g_off(n), g_on(n)) after `cycles` cycles (arrays broadcast together; see module doc)."""
    g_off = np.asarray(g_off, dtype=np.float64)
    g_on = np.asarray(g_on, dtype=np.float64)
    n = np.asarray(cycles, dtype=np.float64)
    ratio = np.where(n > threshold, n / threshold, 1.0)
    g_c = np.sqrt(g_on * g_off)
    new_on = np.maximum(g_on * ratio ** (-a_on), g_c)
    new_off = np.minimum(g_off * ratio ** (-a_off), g_c)
    return new_off, new_on


class Endurance(NonidealityPass):
    """Window closure with cycles (Lammie, Rahimi Azghadi & Ielmini 2021, gradual mode)."""

    name = "endurance"
    PARAMETERS = ("cycles", "threshold", "a_on", "a_off", "count_programming")
    ALIASES = {"n": "cycles", "n_th": "threshold"}
    REPEATABLE = False
    REPEAT_HINT = ("a second pass would shrink the already shrunk window again; cycles add up, so give one "
                   "endurance with the total cycles")

    def __init__(self, cycles: float | None = None, threshold: float | None = None, a_on: float | None = None,
                 a_off: float | None = None, count_programming: bool | None = None):
        nd = self.name
        given = [v for v in (cycles, threshold, a_on, a_off, count_programming) if v is not None]
        if count_programming is None:
            count_programming = True
        elif isinstance(count_programming, str):
            text = count_programming.strip().lower()
            if text not in ("true", "false", "yes", "no", "1", "0", "on", "off"):
                fail(nd, f"count_programming must be true or false, got {count_programming!r}")
            count_programming = text in ("true", "yes", "1", "on")
        elif not isinstance(count_programming, (bool, np.bool_)):
            fail(nd, f"count_programming must be true or false, got {count_programming!r}")
        self.count_programming = bool(count_programming)
        if not given or (cycles is None and not self.count_programming):
            fail(nd, "give cycles=N, the write cycles the devices saw before programming "
                     f"(e.g. endurance:cycles=1e6; its parameters: {', '.join(self.PARAMETERS)})")
        cycles = 0.0 if cycles is None else cycles
        threshold = DEFAULT_THRESHOLD if threshold is None else threshold
        a_on = DEFAULT_A_ON if a_on is None else a_on
        a_off = DEFAULT_A_OFF if a_off is None else a_off
        self.cycles = number_arg(nd, "cycles", cycles, low=0)
        self.threshold = number_arg(nd, "threshold", threshold, low=0, low_open=True)
        self.a_on = number_arg(nd, "a_on", a_on, low=0)
        self.a_off = number_arg(nd, "a_off", a_off, high=0)

    def settings(self) -> dict:
        return {"cycles": self.cycles, "threshold": self.threshold, "a_on": self.a_on, "a_off": self.a_off,
                "count_programming": self.count_programming}

    def window(self, g_off, g_on, cycles):
        return degraded_window(g_off, g_on, cycles, threshold=self.threshold, a_on=self.a_on, a_off=self.a_off)

    def transform(self, g: np.ndarray, view: LayerDevicesView):
        n = self.cycles + (view.pulses.astype(np.float64) if self.count_programming else 0.0)
        n = np.broadcast_to(np.asarray(n, dtype=np.float64), g.shape)
        new_off, new_on = self.window(view.g_off, view.g_on, n)
        width = view.g_on - view.g_off
        inside = (g >= view.g_off * (1 - _SLACK)) & (g <= view.g_on * (1 + _SLACK))
        degraded = n > self.threshold  # at or below the threshold a device is exactly as fresh
        pos = np.clip((g - view.g_off) / width, 0.0, 1.0)
        new = np.where(inside & degraded, new_off + pos * (new_on - new_off), g)
        shrink = 1.0 - (new_on - new_off) / width
        stats = {
            "mean_cycles": float(n.mean()) if n.size else 0.0,
            "max_cycles": float(n.max()) if n.size else 0.0,
            "n_degraded": int(np.count_nonzero(degraded)),
            "mean_window_shrink": float(shrink.mean()) if shrink.size else 0.0,
            "max_window_shrink": float(shrink.max()) if shrink.size else 0.0,
        }
        return new, stats
