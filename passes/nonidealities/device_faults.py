"""`DeviceFaults`: devices stuck at LRS, stuck at HRS, or never electroformed.

MemTorch's device-fault non-ideality (`memtorch.bh.nonideality.DeviceFaults`;
/work/shared/docs/devices.md): a proportion ``stuck_lrs`` of the devices is stuck at the low
resistance state, a proportion ``stuck_hrs`` at the high resistance state, and a proportion
``unformed`` failed to electroform.

Sampling: every device draws one uniform number u in [0, 1) from the layer's fault stream
(`numpy.random.Generator` seeded with ``SeedSequence(layer_seed(seed, node), spawn_key=
(crc32("faults"),))``: reproducible per layer and independent of the device-instance stream,
which `ProgramDevices` seeds with ``layer_seed(seed, node)`` itself);
u < stuck_lrs → stuck at LRS, stuck_lrs <= u < stuck_lrs + stuck_hrs → stuck at HRS, the next
``unformed`` → unformed. The three sets are disjoint and each device is faulty independently,
so the counts are multinomial with the given proportions (their sum must be <= 1). ``seed``
None: the compile seed; an integer: a seed of this pass's own, used in place of the compile
seed (the fault map then stays put when the compile seed changes the device instances).

Repeated passes (``--nonideality faults:stuck_lrs=0.1 --nonideality faults:stuck_hrs=0.1``):
each draws its own devices, independently of the others. A pass's stream is the one above with
``spawn_key=(crc32("faults"), k)`` in place of ``(crc32("faults"),)`` when k > 0 earlier faults
passes of the compilation used the same seed (its own ``seed``, or the compile seed when None;
`LayerDevicesView.occurrence`). The first pass of each seed keeps the one-word key, so a single
pass, or passes with different seeds, give the same model as before. Independent sets overlap:
a device picked by both passes ends in the later pass's state, so the proportions become
stuck_lrs·(1 − stuck_hrs) and stuck_hrs; one pass with both proportions gives disjoint sets
with exactly the proportions given.

At least one of stuck_lrs, stuck_hrs, unformed must be given (0 is allowed): without them the
pass would do nothing.

Values, with each device's *own* window (device-to-device variability included):

- stuck at LRS → the device's g_on = 1/r_on;
- stuck at HRS → the device's g_off = 1/r_off;
- unformed → ``unformed_factor · g_off`` (default 0.1, i.e. ten times the HRS resistance).
  A device that never went through electroforming stays in its pristine state, the virgin
  insulating oxide, whose resistance is well above the HRS reached after forming and cycling:
  forming is the one-time soft breakdown that creates the filament, and the pristine
  resistance of HfOx/TaOx cells is typically one to several orders of magnitude above HRS
  (H.-S. P. Wong et al., "Metal–Oxide RRAM", Proc. IEEE 100(6), 2012, sec. II-B; D. Ielmini,
  "Resistive switching memories based on metal oxides", Semicond. Sci. Technol. 31, 063002,
  2016). One decade is a conservative choice; MemTorch counts unformed devices as stuck at HRS,
  which ``unformed_factor=1`` reproduces.

Statistics per layer: n_stuck_lrs, n_stuck_hrs, n_unformed, n_faulty, n_devices, n_changed,
weight_error.
"""

from __future__ import annotations

import zlib

import numpy as np

from ..program_devices import layer_seed
from .base import LayerDevicesView, NonidealityPass, fail, number_arg

FAULT_STREAM = zlib.crc32(b"faults")


def fault_rng(layer_seed_value: int, occurrence: int = 0) -> np.random.Generator:
    """The random stream of one layer's faults, from its `layer_seed` and the pass's occurrence
    (see the module docstring)."""
    # Occurrence 0 keeps its one-word spawn key: single-pass compilations stay bit-identical.
    key = (FAULT_STREAM,) if occurrence == 0 else (FAULT_STREAM, int(occurrence))
    return np.random.default_rng(np.random.SeedSequence(int(layer_seed_value), spawn_key=key))


class DeviceFaults(NonidealityPass):
    """Disjoint random sets of devices stuck at LRS / HRS, or unformed."""

    name = "faults"
    PARAMETERS = ("stuck_lrs", "stuck_hrs", "unformed", "unformed_factor", "seed")
    ALIASES = {"lrs": "stuck_lrs", "hrs": "stuck_hrs", "electroform": "unformed"}

    def __init__(self, stuck_lrs: float | None = None, stuck_hrs: float | None = None,
                 unformed: float | None = None, unformed_factor: float = 0.1, seed: int | None = None):
        nd = self.name
        if stuck_lrs is None and stuck_hrs is None and unformed is None:
            fail(nd, "give at least one proportion of faulty devices: stuck_lrs, stuck_hrs or unformed "
                     f"(its parameters: {', '.join(self.PARAMETERS)}; e.g. faults:stuck_lrs=0.01)")
        stuck_lrs = 0.0 if stuck_lrs is None else stuck_lrs
        stuck_hrs = 0.0 if stuck_hrs is None else stuck_hrs
        unformed = 0.0 if unformed is None else unformed
        self.stuck_lrs = number_arg(nd, "stuck_lrs", stuck_lrs, low=0, high=1)
        self.stuck_hrs = number_arg(nd, "stuck_hrs", stuck_hrs, low=0, high=1)
        self.unformed = number_arg(nd, "unformed", unformed, low=0, high=1)
        total = self.stuck_lrs + self.stuck_hrs + self.unformed
        if total > 1 + 1e-12:
            fail(nd, f"stuck_lrs + stuck_hrs + unformed must be <= 1 (proportions of devices), got {total:g}")
        self.unformed_factor = number_arg(nd, "unformed_factor", unformed_factor, low=0, high=1)
        self.seed = number_arg(nd, "seed", seed, low=0, integer=True, allow_none=True)

    def settings(self) -> dict:
        out = {"stuck_lrs": self.stuck_lrs, "stuck_hrs": self.stuck_hrs, "unformed": self.unformed,
               "unformed_factor": self.unformed_factor}
        if self.seed is not None:
            out["seed"] = self.seed
        return out

    def sample(self, n: int, layer_seed_value: int, occurrence: int = 0) -> np.ndarray:
        """Fault code per device (int8): 0 healthy, 1 stuck at LRS, 2 stuck at HRS, 3 unformed,
        for a layer of `n` devices whose seed is `layer_seed_value` (`layer_seed(seed, node)`),
        drawn by the `occurrence`-th faults pass of the compilation (0: the first)."""
        u = fault_rng(layer_seed_value, occurrence).random(n)
        a = self.stuck_lrs
        b = a + self.stuck_hrs
        c = b + self.unformed
        code = np.zeros(n, dtype=np.int8)
        code[u < a] = 1
        code[(u >= a) & (u < b)] = 2
        code[(u >= b) & (u < c)] = 3
        return code

    def shares_stream(self, settings: dict, ctx) -> bool:
        return settings.get("seed", ctx.options.seed) == (ctx.options.seed if self.seed is None else self.seed)

    def transform(self, g: np.ndarray, view: LayerDevicesView):
        seed = view.seed if self.seed is None else layer_seed(self.seed, view.rec.node)
        code = self.sample(g.size, seed, view.occurrence)
        new = g.copy()
        lrs, hrs, unf = code == 1, code == 2, code == 3
        new[lrs] = view.g_on[lrs]
        new[hrs] = view.g_off[hrs]
        new[unf] = self.unformed_factor * view.g_off[unf]
        n_l, n_h, n_u = (int(np.count_nonzero(m)) for m in (lrs, hrs, unf))
        return new, {"n_stuck_lrs": n_l, "n_stuck_hrs": n_h, "n_unformed": n_u, "n_faulty": n_l + n_h + n_u}
