"""Window functions for memristor state equations.

A window multiplies the state derivative, ``dx/dt = (drift) * f(x)``, so that the normalised
state ``x`` (0 at one bound, 1 at the other) slows down near, and cannot pass, its bounds.
All functions take numpy arrays (any shape, broadcasting) and return float arrays in [0, 1].

- Joglekar & Wolf, "The elusive memristor: properties of basic electrical circuits",
  Eur. J. Phys. 30 (2009) 661:            f(x) = 1 - (2x - 1)^(2p),  p a positive integer.
  (MemTorch 1.1.6 evaluates this without the parentheses around the power; memcc does not.)
- Biolek, Biolek & Biolkova, "SPICE model of memristor with nonlinear dopant drift",
  Radioengineering 18 (2009) 210:         f(x, i) = 1 - (x - stp(-i))^(2p),
  with stp(z) = 1 for z >= 0 else 0 and ``i`` the direction of motion (positive = x increasing);
  the window vanishes only at the bound the state is moving towards, so a device sitting at a
  bound can always leave it (no "terminal state problem").
- Prodromakis, Peh, Papavassiliou & Toumazou, "A versatile memristor model with nonlinear dopant
  kinetics", IEEE TED 58 (2011) 3099:     f(x) = j * (1 - ((x - 0.5)^2 + 0.75)^p),  p > 0, 0 < j <= 1.

With Joglekar and Prodromakis windows f = 0 at both bounds: a state exactly at a bound never
moves again (the terminal state problem noted by Biolek et al.). Models that use them keep the
state a small margin inside its bounds (see ``TERMINAL_MARGIN``).
"""

from __future__ import annotations

import numpy as np

#: Names accepted by the models' ``window`` parameter.
WINDOWS = ("none", "joglekar", "biolek", "prodromakis")

#: Distance (in normalised state) that models using a window which vanishes at both bounds keep
#: from the bounds, so that a device can always move again.
TERMINAL_MARGIN = 1e-6


def _even_power(z: np.ndarray, p) -> np.ndarray:
    """z ** (2p) for real z, fast for small integer p (the common case p = 1, 2)."""
    if np.ndim(p) == 0 and float(p) == int(p) and 1 <= int(p) <= 4:
        z2 = z * z
        out = z2
        for _ in range(int(p) - 1):
            out = out * z2
        return out
    return np.abs(z) ** (2.0 * np.asarray(p, dtype=float))


def no_window(x, *_, **__) -> np.ndarray:
    """f(x) = 1 (the state is only bounded by clipping)."""
    return np.ones_like(np.asarray(x, dtype=float))


def joglekar(x, p=1) -> np.ndarray:
    """Joglekar window f(x) = 1 - (2x - 1)^(2p)."""
    x = np.asarray(x, dtype=float)
    return 1.0 - _even_power(2.0 * x - 1.0, p)


def biolek(x, direction, p=1) -> np.ndarray:
    """Biolek window f(x, i) = 1 - (x - stp(-i))^(2p); ``direction`` > 0 means x is increasing."""
    x = np.asarray(x, dtype=float)
    stp = (np.asarray(direction) <= 0).astype(float)  # stp(-i): 1 when i <= 0
    return 1.0 - _even_power(x - stp, p)


def prodromakis(x, p=1, j=1.0) -> np.ndarray:
    """Prodromakis window f(x) = j (1 - ((x - 0.5)^2 + 0.75)^p)."""
    x = np.asarray(x, dtype=float)
    base = (x - 0.5) ** 2 + 0.75
    if np.ndim(p) == 0 and float(p) == 1.0:
        powed = base
    else:
        powed = base ** np.asarray(p, dtype=float)
    return np.asarray(j, dtype=float) * (1.0 - powed)


def evaluate(name: str, x, direction=None, p=1, j=1.0) -> np.ndarray:
    """The window called ``name`` at normalised state ``x`` (``direction`` needed by Biolek)."""
    if name == "none":
        return no_window(x)
    if name == "joglekar":
        return joglekar(x, p)
    if name == "biolek":
        if direction is None:
            raise ValueError("the Biolek window needs the direction of motion")
        return biolek(x, direction, p)
    if name == "prodromakis":
        return prodromakis(x, p, j)
    raise ValueError(f"unknown window {name!r} (known: {', '.join(WINDOWS)})")


def vanishes_at_bounds(name: str) -> bool:
    """True for windows with f = 0 at both bounds (terminal state problem)."""
    return name in ("joglekar", "prodromakis")
