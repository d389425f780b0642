"""`ReadNoise`: cycle-to-cycle read noise, drawn by the op at every read.

Every device's conductance at a read is G'(1 + std·ε), ε standard normal, independent per
device, read and execution (docs/op-spec.md, step 5). The op adds the exact Gaussian of the
summed currents (variance Σ f(v)²·std²·G'² per tile read, one extra GEMM), not a noisy copy of
the matrix. Sets ``read_noise_std`` and ``noise_seed`` (per layer: `stream_key` of the compile
seed, or of ``seed`` when given, and the node name). The noise changes from run to run of a
session (the op counts its executions) and repeats in a new session.
"""

from __future__ import annotations

from .base import number_arg
from .runtime_base import RuntimeNonideality, stream_key


class ReadNoise(RuntimeNonideality):
    """Relative Gaussian read noise of std ``std`` at every read."""

    name = "read_noise"
    PARAMETERS = ("std", "seed")
    ALIASES = {"sigma": "std", "read_noise_std": "std"}
    REPEAT_HINT = ("a run-time non-ideality sets one attribute per layer (read_noise_std), so only the last "
                   "would apply; give one read_noise with the combined std (sqrt(std1^2 + std2^2) for "
                   "independent noise)")

    def __init__(self, std: float = 0.05, seed: int | None = None):
        self.std = number_arg(self.name, "std", std, low=0)
        self.seed = number_arg(self.name, "seed", seed, low=0, integer=True, allow_none=True)

    def settings(self) -> dict:
        out = {"std": self.std}
        if self.seed is not None:
            out["seed"] = self.seed
        return out

    def attributes(self, ctx, rec) -> dict:
        seed = ctx.options.seed if self.seed is None else self.seed
        return {"read_noise_std": float(self.std), "noise_seed": stream_key(seed, rec.node, "read_noise")}
