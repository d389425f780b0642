"""`FiniteStates`: devices hold only a finite number of conductance states.

MemTorch's finite-conductance-states non-ideality (MemTorch paper, ISCAS 2020, Fig. 7;
/work/shared/docs/devices.md): every programmed conductance is replaced by the nearest of the
device's states, found by binary search over the sorted states (`memcc.quantize.nearest_state`;
**a value exactly halfway between two states goes to the lower one**).

Two ways to give the states:

- ``n_states=N`` (``n`` in specs; spacing ``"linear"``): N levels spaced linearly over *each
  device's own* window, ``g_off + k (g_on - g_off) / (N - 1)``, k = 0 … N-1 (with
  device-to-device variability every device has its own g_on/g_off, so its own levels). The
  nearest level is found by the same binary search on the device's relative position
  ``(g - g_off) / (g_on - g_off)`` over the levels ``k / (N - 1)``; conductances outside the
  window go to its end levels.
  At most `MAX_STATES` = 2^24 levels: a float32 conductance has a 24-bit significand, so finer
  levels could not be told apart in the stored G (and the level table must fit in memory).
- ``states=[...]``: an explicit list of measured conductance states, **absolute values in
  siemens**, the same list for every device (sorted here; duplicates are removed). Text form:
  ``finite_states:states=1e-5,2e-5,5e-5``. At least 2 distinct states, and at least 2 of them
  inside the nominal device's window [G_off, G_on] widened by `WINDOW_TOLERANCE` (a factor of 2)
  on each side, i.e. [G_off/2, 2·G_on]: measured states may lie somewhat beyond the nominal
  window (device-to-device spread), but a list with fewer than two states the devices can reach
  maps every device to one state or to an unreachable one (typically states typed in µS instead
  of siemens), so the pass refuses it when it runs (the window is the device's), and `check`
  refuses it before any model is mapped (`memcc sweep` checks its points so).

The pass is deterministic (no random numbers). Statistics per layer: states_per_device (N, or
the length of the list), n_devices, n_changed, mean_abs_change (mean |Δg| / window width of the
device), weight_error.
"""

from __future__ import annotations

import numpy as np

from memcc.quantize import nearest_state, nearest_state_index

from .base import LayerDevicesView, NonidealityPass, fail, number_arg, number_list_arg, word_arg

SPACINGS = ("linear",)
#: the largest n_states (see the module docstring)
MAX_STATES = 2**24
#: states within [G_off / WINDOW_TOLERANCE, G_on · WINDOW_TOLERANCE] count as inside the window
WINDOW_TOLERANCE = 2.0


class FiniteStates(NonidealityPass):
    """N linear states per device window (`n_states`) or an explicit list (`states`, siemens)."""

    name = "finite_states"
    PARAMETERS = ("n_states", "states", "spacing")
    ALIASES = {"n": "n_states", "levels": "n_states"}
    REPEATABLE = False
    REPEAT_HINT = ("a device has one set of conductance states, and the second would re-round the first's "
                   "levels; give one finite_states")

    def __init__(self, n_states: int | None = None, states=None, spacing: str = "linear"):
        nd = self.name
        if (n_states is None) == (states is None):
            fail(nd, "give either n_states (n=N: linear levels over each device's window) "
                     "or states (a list of conductances in siemens)")
        self.spacing = word_arg(nd, "spacing", spacing, SPACINGS)
        self.n_states = None if n_states is None else number_arg(nd, "n_states", n_states, low=2, integer=True)
        if self.n_states is not None and self.n_states > MAX_STATES:
            fail(nd, f"n_states must be <= 2^24 = {MAX_STATES} (finer levels than float32 conductances "
                     f"resolve), got {self.n_states}")
        if states is not None:
            values = number_list_arg(nd, "states", states)
            if any(v < 0 for v in values):
                fail(nd, "states are conductances in siemens and must be >= 0")
            self.states = sorted(set(values))
            if len(self.states) < 2:
                fail(nd, f"states needs at least 2 distinct conductances (siemens), got {_list(self.states)}")
        else:
            self.states = None

    def settings(self) -> dict:
        if self.states is not None:
            return {"states": list(self.states)}
        return {"n_states": self.n_states, "spacing": self.spacing}

    def check_window(self, g_off: float, g_on: float) -> None:
        """ConfigError unless at least 2 of `states` lie in [g_off, g_on] widened by WINDOW_TOLERANCE."""
        if self.states is None:
            return
        low, high = g_off / WINDOW_TOLERANCE, g_on * WINDOW_TOLERANCE
        inside = sum(1 for v in self.states if low <= v <= high)
        if inside < 2:
            fail(self.name, f"{inside} of the {len(self.states)} states lie within the device's conductance "
                            f"window [{g_off:.3g}, {g_on:.3g}] S (a factor of {WINDOW_TOLERANCE:g} beyond it "
                            f"accepted); at least 2 must. States are in siemens (10 uS = 1e-5), got "
                            f"{_list(self.states)}")

    def check(self, ctx) -> None:
        nom = ctx.nominal_device
        self.check_window(float(np.min(nom.g_off)), float(np.max(nom.g_on)))

    def run(self, ctx) -> None:
        if any(rec.mapped for rec in ctx.layers):
            self.check(ctx)
        super().run(ctx)

    def transform(self, g: np.ndarray, view: LayerDevicesView):
        width = view.g_on - view.g_off
        if self.states is not None:
            new = nearest_state(g, np.asarray(self.states)).astype(np.float64)
            n_states = len(self.states)
        else:
            n = self.n_states
            levels = np.arange(n, dtype=np.float64) / (n - 1)
            u = (g - view.g_off) / width
            k = nearest_state_index(u, levels)  # binary search, ties → lower level
            k = np.where(k < 0, 0, k)  # NaN conductances cannot occur; keep a defined value
            new = view.g_off + (k / (n - 1)) * width
            n_states = n
        change = np.abs(new - g) / width
        stats = {"states_per_device": int(n_states),
                 "mean_abs_change": float(change.mean()) if change.size else 0.0}
        return new, stats


def _list(values) -> str:
    shown = ",".join(f"{v:g}" for v in values[:6])
    return shown + (f",... ({len(values)} values)" if len(values) > 6 else "")
