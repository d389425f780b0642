"""The base class of memcc's device models."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from memcc.errors import ConfigError


@dataclass(frozen=True)
class Device:
    """A memristive device model: its resistance window and, in subclasses, its physics.

    `r_on` (low-resistance state, LRS) and `r_off` (high-resistance state, HRS) are in ohms;
    `0 < r_on < r_off`. Conductances: `g_on = 1 / r_on` (largest), `g_off = 1 / r_off`.
    Subclasses set `name` and add their own parameters as dataclass fields with defaults, and
    extend `validate()`.
    """

    name = "device"  # class attribute, not a field
    r_on: float = 1e3
    r_off: float = 1e5

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        """Raise ConfigError when a parameter is out of range."""
        for f in ("r_on", "r_off"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise ConfigError(f"device {self.name!r}: {f} must be a finite number > 0 ohm, got {v!r}")
        if not self.r_on < self.r_off:
            raise ConfigError(
                f"device {self.name!r}: r_on ({self.r_on:g} ohm) must be smaller than r_off ({self.r_off:g} ohm)"
            )

    @property
    def g_on(self) -> float:
        """Largest conductance, 1 / r_on (siemens)."""
        return 1.0 / self.r_on

    @property
    def g_off(self) -> float:
        """Smallest conductance, 1 / r_off (siemens)."""
        return 1.0 / self.r_off

    @classmethod
    def parameter_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    def parameters(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}
