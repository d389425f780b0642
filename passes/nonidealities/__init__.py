"""Compile-time non-idealities: passes that change the programmed conductances.

Each non-ideality is a `Pass` with one job, configured by its constructor, run after
`ProgramDevices` (it acts on the programmed chip) and before `CrossbarAttributes`:

=================  ==================  ===================================================
name               class               parameters (defaults)
=================  ==================  ===================================================
``finite_states``  `FiniteStates`      n_states (alias n, 2 … 2^24) | states (list, siemens,
                                       >= 2 of them within the device's window, a factor 2
                                       either side accepted); spacing "linear"
``faults``         `DeviceFaults`      stuck_lrs, stuck_hrs, unformed (proportions, 0; at
                                       least one given), unformed_factor 0.1, seed (None:
                                       the compile seed)
``endurance``      `Endurance`         cycles 0 (give it), threshold 1e4, a_on 0.1217,
                                       a_off -0.1586, count_programming true
``read_noise``     `ReadNoise`         std 0.05, seed (None: the compile seed)   [run time]
``nonlinear``      `NonlinearIV`       (none: the device model's I-V curve)      [run time]
``drift``          `Drift`             nu 0.05, nu_std 0, t0 1 (s), t (default   [run time]
                                       time, None: t0), seed (None: compile seed)
=================  ==================  ===================================================

Only ``faults`` may be given more than once (each pass then picks its own devices: a pass on the
same seed as an earlier one draws from a stream of its own, `device_faults`); the others
are refused when repeated (ConfigError): a run-time one sets one attribute per layer, so only
the last would apply; a second ``finite_states`` re-rounds the first's levels; a second
``endurance`` shrinks the shrunk window again (cycles add up: give the total). Give one with the
combined value.

The ``[run time]`` ones change no conductance: they set attributes that the op evaluates at
every read (`runtime_base`; docs/op-spec.md), and ``drift`` adds the model input
``memcc_time_s`` (seconds since programming, with a default) wired to every layer.

Device-to-device variability is not a pass: it is the compile option `d2d_std` / distributions
in `device_params`, sampled per device by `ProgramDevices`; the passes here see each device's
own window.

Ways to ask for them (applied **in the order given**, each on the result of the previous one):

- Python: ``memcc.compile(model, nonidealities=[FiniteStates(16), "faults:stuck_lrs=0.01",
  {"name": "endurance", "cycles": 1e6}])``; ``nonideality("faults", stuck_lrs=0.01)`` builds
  one by name; `with_nonidealities(pipeline, [...])` inserts them after ``program_devices``.
- CLI: ``--nonideality finite_states:n=16 --nonideality faults:stuck_lrs=0.01:stuck_hrs=0.01``
  (repeatable; text spec ``NAME[:KEY=VALUE]...``, list values comma-separated:
  ``finite_states:states=1e-5,2e-5,4e-5``).
- TOML: an array of tables, ``[[nonideality]]`` with ``name = "finite_states"`` and ``n = 16``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Iterable

from memcc.errors import ConfigError

from ..base import Pass, Pipeline
from .base import LayerDevicesView, NonidealityPass, check_keys, check_repeats, layer_view
from .device_faults import DeviceFaults
from .endurance import Endurance, degraded_window
from .finite_states import FiniteStates
from .drift import TIME_INPUT, Drift
from .nonlinear_iv import NonlinearIV, iv_coefficients
from .read_noise import ReadNoise
from .runtime_base import RuntimeNonideality, stream_key

#: name → class of the non-idealities `nonideality()` and the text specs know
NONIDEALITIES: dict[str, type[NonidealityPass]] = {
    "finite_states": FiniteStates,
    "faults": DeviceFaults,
    "endurance": Endurance,
    "read_noise": ReadNoise,
    "nonlinear": NonlinearIV,
    "drift": Drift,
}
#: other accepted spellings of the names
NAME_ALIASES = {"device_faults": "faults", "finite_conductance_states": "finite_states", "states": "finite_states",
                "noise": "read_noise", "nonlinearity": "nonlinear", "iv": "nonlinear", "retention": "drift"}

#: the pass after which `with_nonidealities` inserts them
INSERT_AFTER = "program_devices"


def register_nonideality(name: str, cls: type[NonidealityPass]) -> type[NonidealityPass]:
    """Make `cls` (a `NonidealityPass` subclass) available under `name` in specs."""
    if not (isinstance(cls, type) and issubclass(cls, NonidealityPass)):
        raise TypeError("a non-ideality must be a NonidealityPass subclass")
    NONIDEALITIES[name] = cls
    return cls


def list_nonidealities() -> list[str]:
    return list(NONIDEALITIES)


def _lookup(name) -> type[NonidealityPass]:
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"nonideality: expected a name ({', '.join(NONIDEALITIES)}), got {name!r}")
    key = name.strip().lower().replace("-", "_")
    key = NAME_ALIASES.get(key, key)
    cls = NONIDEALITIES.get(key)
    if cls is None:
        import difflib

        close = difflib.get_close_matches(key, list(NONIDEALITIES) + list(NAME_ALIASES), n=1)
        raise ConfigError(
            f"unknown nonideality {name.strip()!r}"
            + (f" (did you mean {NAME_ALIASES.get(close[0], close[0])!r}?)" if close else "")
            + f"; known: {', '.join(NONIDEALITIES)}"
        )
    return cls


def nonideality(name: str, **kwargs) -> NonidealityPass:
    """The non-ideality pass called `name`, configured by `kwargs` (aliases such as ``n`` for
    ``n_states`` accepted; values may be text). ConfigError with a one-line message otherwise."""
    cls = _lookup(name)
    return cls(**check_keys(cls, kwargs))


def parse_spec(text: str) -> NonidealityPass:
    """A text spec ``NAME[:KEY=VALUE]...`` (e.g. ``faults:stuck_lrs=0.01:unformed=0.005``)."""
    if not isinstance(text, str) or not text.strip():
        raise ConfigError("nonideality: empty spec; use NAME[:KEY=VALUE]..., e.g. finite_states:n=16")
    name, *parts = text.strip().split(":")
    kwargs: dict[str, Any] = {}
    for part in parts:
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or not key or not value.strip():
            raise ConfigError(
                f"nonideality spec {text.strip()!r}: expected KEY=VALUE after the name, got {part!r} "
                f"(e.g. finite_states:n=16)"
            )
        if key in kwargs:
            raise ConfigError(f"nonideality spec {text.strip()!r}: {key!r} is given twice")
        kwargs[key] = value.strip()
    return nonideality(name, **kwargs)


def make_nonideality(spec) -> Pass:
    """A pass from a `Pass` instance (returned as is), a text spec, or a mapping with ``name``."""
    if isinstance(spec, Pass):
        return spec
    if isinstance(spec, str):
        return parse_spec(spec)
    if isinstance(spec, Mapping):
        table = dict(spec)
        if "name" not in table:
            raise ConfigError(
                f"nonideality: a table needs name = \"...\" ({', '.join(NONIDEALITIES)}), got {spec!r}"
            )
        name = table.pop("name")
        return nonideality(name, **{str(k): v for k, v in table.items()})
    raise ConfigError(
        f"nonideality: expected a spec like \"finite_states:n=16\", a table with a name, or a "
        f"memcc.passes.Pass, got {spec!r}"
    )


def make_nonidealities(specs) -> list[Pass]:
    """`make_nonideality` over a list (None → []); ConfigError when a non-ideality that may appear
    once (all but ``faults``) is given twice."""
    if specs is None:
        return []
    if isinstance(specs, (str, Mapping, Pass)) or not isinstance(specs, Iterable):
        raise ConfigError("nonidealities must be a list of passes, specs or tables")
    passes = [make_nonideality(s) for s in specs]
    check_repeats(passes)
    return passes


def with_nonidealities(pipeline, specs) -> Pipeline:
    """A new `Pipeline`: `pipeline`'s passes with the non-idealities inserted, in order, right
    after ``program_devices`` (ConfigError when the pipeline has no such pass)."""
    passes = list(pipeline)
    extra = make_nonidealities(specs)
    if not extra:
        return Pipeline(passes)
    names = [p.name for p in passes]
    if INSERT_AFTER not in names:
        raise ConfigError(
            "nonidealities act on programmed conductances; the pipeline has no "
            f"{INSERT_AFTER!r} pass to insert them after"
        )
    i = names.index(INSERT_AFTER) + 1
    return Pipeline(passes[:i] + extra + passes[i:])


__all__ = [
    "NonidealityPass", "LayerDevicesView", "layer_view", "check_repeats",
    "FiniteStates", "DeviceFaults", "Endurance", "degraded_window",
    "RuntimeNonideality", "ReadNoise", "NonlinearIV", "Drift", "TIME_INPUT", "iv_coefficients", "stream_key",
    "NONIDEALITIES", "register_nonideality", "list_nonidealities",
    "nonideality", "parse_spec", "make_nonideality", "make_nonidealities", "with_nonidealities",
]
