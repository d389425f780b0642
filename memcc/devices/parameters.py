"""Stochastic device parameters: device-to-device variability.

Any numeric device parameter may be given as a :class:`Distribution` — a normal distribution with
``mean`` and ``std``, clipped to ``[min, max]`` — instead of a number. It is sampled once per
device (device-to-device variability, as in MemTorch's ``memtorch.bh.StochasticParameter``,
which also draws a clipped normal once per device) with a numpy ``Generator``:

- from an integer seed, each parameter gets its own stream derived from ``(seed, name)``, so the
  samples of ``r_on`` do not change when another parameter becomes stochastic, and the same seed
  always gives bit-identical samples;
- from a ``Generator``, parameters are drawn one after the other in name order.

Text forms (CLI flags and TOML strings)::

    r_on=50                       fixed value
    r_on=50:std=10                normal, mean 50, std 10
    r_on=50:std=10:min=1:max=90   clipped to [1, 90]

TOML tables: ``r_on = {mean = 50, std = 10, min = 1}`` (``mean`` required, the rest optional).
Errors are :class:`ParameterError`, which is both a ``ConfigError`` (the CLI prints it as one
line) and a ``ValueError``.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from memcc.errors import ConfigError


class ParameterError(ConfigError, ValueError):
    """A device parameter given by the user is unknown or has an unusable value."""


@dataclass(frozen=True)
class Distribution:
    """Normal(mean, std) clipped to [min, max], sampled once per device."""

    mean: float
    std: float = 0.0
    min: float = -math.inf
    max: float = math.inf

    def __post_init__(self):
        for key in ("mean", "std", "min", "max"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
                raise ParameterError(f"distribution {key} must be a number, got {value!r}")
            object.__setattr__(self, key, float(value))
        if not math.isfinite(self.mean):
            raise ParameterError(f"distribution mean must be finite, got {self.mean!r}")
        if not math.isfinite(self.std) or self.std < 0:
            raise ParameterError(f"distribution std must be a finite number >= 0, got {self.std!r}")
        if math.isnan(self.min) or math.isnan(self.max):
            raise ParameterError("distribution min/max must not be NaN")
        if self.min > self.max:
            raise ParameterError(f"distribution min ({self.min:g}) is larger than max ({self.max:g})")

    @property
    def is_fixed(self) -> bool:
        return self.std == 0.0

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` float64 samples: normal draws clipped to [min, max]."""
        if self.std == 0.0:
            out = np.full(int(n), self.mean)
        else:
            out = rng.normal(self.mean, self.std, int(n))
        return np.clip(out, self.min, self.max)

    def to_text(self, name: str) -> str:
        parts = [f"{name}={self.mean:g}"]
        if self.std:
            parts.append(f"std={self.std:g}")
        if self.min != -math.inf:
            parts.append(f"min={self.min:g}")
        if self.max != math.inf:
            parts.append(f"max={self.max:g}")
        return ":".join(parts)

    def __str__(self) -> str:
        return self.to_text("").lstrip("=")


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ParameterError(f"{what}: expected a number, got {text!r}") from None
    if math.isnan(value):
        raise ParameterError(f"{what}: expected a number, got {text!r}")
    return value


_DIST_KEYS = ("std", "min", "max")


def parse_value(name: str, text: str) -> float | str | Distribution:
    """The value part of ``name=...``: a number, ``N:std=S[:min=A][:max=B]``, or a word.

    A word (e.g. ``joglekar``) is returned as a string; the device model decides whether the
    parameter accepts one.
    """
    text = text.strip()
    if not text:
        raise ParameterError(f"parameter {name!r}: missing value (expected e.g. {name}=50 or {name}=50:std=10)")
    head, *opts = [s.strip() for s in text.split(":")]
    if not opts:
        try:
            value = float(head)
        except ValueError:
            if head.replace("_", "").isalnum() and not head[0].isdigit():
                return head.lower()
            raise ParameterError(f"parameter {name!r}: expected a number, got {head!r}") from None
        if not math.isfinite(value):
            raise ParameterError(f"parameter {name!r}: value must be finite, got {head!r}")
        return value
    if head.lower().startswith("mean="):
        head = head[5:]
    mean = _number(head, f"parameter {name!r} mean")
    kw: dict[str, float] = {}
    for opt in opts:
        key, sep, val = opt.partition("=")
        key = key.strip().lower()
        if not sep:
            raise ParameterError(
                f"parameter {name!r}: {opt!r} is not key=value (expected std=, min= or max=)"
            )
        if key not in _DIST_KEYS:
            raise ParameterError(f"parameter {name!r}: unknown option {key!r} (expected std=, min= or max=)")
        if key in kw:
            raise ParameterError(f"parameter {name!r}: {key}= given twice")
        kw[key] = _number(val.strip(), f"parameter {name!r} {key}")
    try:
        return Distribution(mean, **kw)
    except ParameterError as e:
        raise ParameterError(f"parameter {name!r}: {e}") from None


def parse_parameter(text: str) -> tuple[str, float | str | Distribution]:
    """Parse one ``name=value[:std=S][:min=A][:max=B]`` string into (name, value)."""
    if not isinstance(text, str):
        raise ParameterError(f"expected a string like r_on=50:std=10, got {text!r}")
    name, sep, rest = text.partition("=")
    name = name.strip()
    if not sep or not name:
        raise ParameterError(f"{text!r} is not name=value (expected e.g. r_on=50 or r_on=50:std=10:min=1)")
    if not name.replace("_", "").isalnum():
        raise ParameterError(f"{name!r} is not a parameter name")
    return name, parse_value(name, rest)


def parse_parameters(items) -> dict[str, Any]:
    """Parse a list of ``name=value...`` strings (CLI flags) or a mapping (a TOML table).

    Mapping values may be numbers, strings in the text form (``"50:std=10"``), or tables
    ``{mean = 50, std = 10, min = 1, max = 90}``. Returns name -> float | str | Distribution.
    """
    out: dict[str, Any] = {}
    if isinstance(items, Mapping):
        for name, value in items.items():
            if name in out:
                raise ParameterError(f"parameter {name!r} given twice")
            out[str(name)] = from_config_value(str(name), value)
        return out
    if isinstance(items, str):
        items = [items]
    for text in items:
        name, value = parse_parameter(text)
        if name in out:
            raise ParameterError(f"parameter {name!r} given twice")
        out[name] = value
    return out


def from_config_value(name: str, value: Any) -> float | str | Distribution:
    """One parameter value from a TOML/Python config: number, text form, or {mean, std, min, max}."""
    if isinstance(value, Distribution):
        return value
    if isinstance(value, bool):
        raise ParameterError(f"parameter {name!r}: expected a number, got {value!r}")
    if isinstance(value, (int, float, np.integer, np.floating)):
        value = float(value)
        if not math.isfinite(value):
            raise ParameterError(f"parameter {name!r}: value must be finite, got {value!r}")
        return value
    if isinstance(value, str):
        return parse_value(name, value)
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - {"mean", "std", "min", "max"})
        if unknown:
            raise ParameterError(
                f"parameter {name!r}: unknown key(s) {', '.join(map(repr, unknown))} (expected mean, std, min, max)"
            )
        if "mean" not in value:
            raise ParameterError(f"parameter {name!r}: a distribution table needs 'mean'")
        kw = {}
        for key in ("mean", "std", "min", "max"):
            if key in value:
                v = value[key]
                if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
                    raise ParameterError(f"parameter {name!r}: {key} must be a number, got {v!r}")
                kw[key] = float(v)
        try:
            return Distribution(**kw)
        except ParameterError as e:
            raise ParameterError(f"parameter {name!r}: {e}") from None
    raise ParameterError(f"parameter {name!r}: cannot use {value!r} (expected a number or {{mean, std, min, max}})")


def _stream(seed: int, name: str) -> np.random.Generator:
    ss = np.random.SeedSequence(int(seed), spawn_key=(zlib.crc32(name.encode("utf-8")),))
    return np.random.Generator(np.random.PCG64(ss))


def sample_parameters(values: Mapping[str, Any], n: int, seed=None) -> dict[str, Any]:
    """Replace each Distribution in ``values`` by ``n`` per-device samples (float64 arrays).

    ``seed``: an int (per-parameter streams, see the module docstring), a numpy Generator, or
    None (seed 0: simulations are reproducible unless asked otherwise). Other values pass through.
    """
    n = int(n)
    if n < 0:
        raise ValueError(f"number of devices must be >= 0, got {n}")
    gen = seed if isinstance(seed, np.random.Generator) else None
    base_seed = 0 if seed is None else seed
    if gen is None and not isinstance(base_seed, (int, np.integer)):
        raise ParameterError(f"seed must be an integer or a numpy Generator, got {seed!r}")
    out = dict(values)
    for name in sorted(values):
        value = values[name]
        if isinstance(value, Distribution):
            rng = gen if gen is not None else _stream(int(base_seed), name)
            out[name] = value.sample(n, rng)
    return out


def describe_value(value: Any) -> str:
    """Human-readable form of a parameter value (for `memcc device show`)."""
    if isinstance(value, Distribution):
        return str(value)
    if isinstance(value, np.ndarray):
        if value.size == 0:
            return "[]"
        return f"per-device array (n={value.size}, mean={value.mean():g}, std={value.std():g})"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
