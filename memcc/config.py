"""Compile settings: validation, TOML config files, and precedence of CLI flags over files.

Every `memcc compile` flag has a key of the same name in a TOML file (underscores or dashes):

    device = "ideal"
    tile = "128x128"          # or [128, 128], or 128 (square), or "none" / 0 (no tiling)
    dac_bits = 8
    adc_bits = 8
    adc_overflow_rate = 0.0
    scheme = "double"         # or "single"
    max_input_voltage = 0.3
    input_range = 0.0
    r_on = 1e4
    r_off = 1e6
    d2d_std = 0.1             # device-to-device spread of r_on/r_off (default: the device's)
    programming = "naive"     # or "ideal" (default: naive for physical devices)
    seed = 0

    [device]                  # instead of `device = "..."`: the model and its parameters
    name = "vteam"
    r_on = "50:std=10:min=1"  # a number, a text form, or a table {mean, std, min, max}
    r_off = {mean = 1000, std = 100}

    [programming]             # options of naive programming (memcc.programming.program_naive)
    method = "naive"          # instead of `programming = "..."`
    tolerance = 0.05
    max_pulses = 200

    [[nonideality]]           # non-idealities of the programmed chip, applied in this order
    name = "finite_states"    # (memcc.passes.nonidealities; `--nonideality SPEC` on the CLI)
    n = 16
    [[nonideality]]
    name = "faults"
    stuck_lrs = 0.01
    stuck_hrs = 0.01

`nonidealities = ["finite_states:n=16", ...]` (text specs) is the same. Non-idealities given on
the command line replace the file's list.

The keys may also sit in a `[compile]` table. `resolve()` merges defaults < file < flags and
returns keyword arguments for `memcc.compiler.compile`.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from memcc.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib as _toml
else:  # pragma: no cover - Python 3.10
    import tomli as _toml

SCHEMES = ("double", "single")

#: Defaults of `memcc.compiler.compile`; r_on/r_off = None means "the device's own values".
DEFAULTS: dict[str, Any] = {
    "device": "ideal",
    "scheme": "double",
    "tile": (0, 0),
    "dac_bits": 0,
    "adc_bits": 0,
    "adc_overflow_rate": 0.0,
    "max_input_voltage": 0.3,
    "input_range": 0.0,
    "r_on": None,
    "r_off": None,
    "seed": 0,
    "d2d_std": None,
    "programming": None,
    "device_params": None,
    "programming_options": None,
    "nonidealities": None,
}

COMPILE_KEYS = tuple(DEFAULTS)

#: The op stores tile_shape as int64 attributes and accepts any size >= 0 (a size beyond the
#: layer means "not split"), so the attribute type is the only limit.
TILE_MAX = 2**63 - 1

# The op reads conductances, weight_scale, max_input_voltage and input_range as float32: a value
# outside float32's normal range turns into inf, 0 or a subnormal with few significant bits there,
# which breaks the model at run time (e.g. weight_scale 0) or silently changes its meaning
# (a tiny input_range becomes 0, per-vector scaling).
F32_MIN = float(np.finfo(np.float32).tiny)  # smallest normal float32
F32_MAX = float(np.finfo(np.float32).max)
#: Accepted conductances (S) and, from G = 1/R, resistances (ohm).
R_MIN, R_MAX = 1.0 / F32_MAX, 1.0 / F32_MIN


# --------------------------------------------------------------------------------------------
# Value parsers: each takes a str (from a flag) or a TOML value, returns the checked value.
# --------------------------------------------------------------------------------------------


def parse_tile(value: Any, key: str = "tile") -> tuple[int, int]:
    """Parse a crossbar size: "128x64", "128" (square), "0"/"none" (no tiling), [r, c] or int.

    A 0 in one position means "not split along that axis", as in the op's `tile_shape`.
    """
    def bad(why: str) -> ConfigError:
        return ConfigError(
            f"{key}: {why}; use ROWSxCOLS like \"128x128\", one number for a square tile, "
            "or \"none\" for no tiling"
        )

    if isinstance(value, bool):
        raise bad(f"{value!r} is not a tile size")
    if isinstance(value, int):
        rows = cols = value
    elif isinstance(value, (list, tuple)):
        if len(value) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise bad(f"{list(value)!r} is not two integers")
        rows, cols = value
    elif isinstance(value, str):
        text = value.strip().lower()
        if text in ("none", "off", "no", ""):
            return (0, 0)
        parts = text.replace("×", "x").replace("*", "x").split("x")
        if len(parts) == 1:
            parts = parts * 2
        if len(parts) != 2:
            raise bad(f"{value!r} is not a tile size")
        try:
            rows, cols = (int(p.strip()) for p in parts)
        except ValueError:
            raise bad(f"{value!r} is not a tile size") from None
    else:
        raise bad(f"{value!r} is not a tile size")
    if rows < 0 or cols < 0:
        raise bad(f"{value!r} has a negative size")
    check_tile((rows, cols), key)
    return (rows, cols)


def check_tile(tile, key: str = "tile") -> None:
    """ConfigError unless both tile sizes fit the op's int64 `tile_shape` attribute."""
    big = max(int(t) for t in tile)
    if big > TILE_MAX:
        raise ConfigError(
            f"{key}: {big} is too large; a tile size is at most {TILE_MAX} (2^63 - 1, the op stores "
            "it as an int64), and any size beyond the layer's means \"not split\" (or use 0)"
        )


def check_normal_f32(x: float, key: str, unit: str = "", hint: str = "") -> float:
    """ConfigError unless x (> 0) is a normal float32 number, as the op reads it."""
    if not F32_MIN <= x <= F32_MAX:
        unit = f" {unit}" if unit else ""
        raise ConfigError(
            f"{key}: {x:g}{unit} is outside float32's normal range [{F32_MIN:.4g}, {F32_MAX:.4g}]{unit} "
            f"in which the op reads it{hint}"
        )
    return x


def check_window(r_on: float, r_off: float, what: str = "") -> None:
    """ConfigError unless the conductances 1/r_on, 1/r_off are normal float32 numbers whose
    difference (the window weights are mapped onto) survives rounding to float32."""
    for name, r in (("r_on", r_on), ("r_off", r_off)):
        _check_conductance(r, what + name)
    if r_on < r_off and not np.float32(1.0 / r_on) > np.float32(1.0 / r_off):
        raise ConfigError(
            f"{what}r_on = {r_on:.9g} ohm and r_off = {r_off:.9g} ohm are too close: their conductances "
            "are equal in float32, so every weight would map to 0"
        )


def _as_int(value: Any, key: str) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip(), 0)
        except ValueError:
            pass
    raise ConfigError(f"{key}: expected an integer, got {value!r}")


def _as_float(value: Any, key: str) -> float:
    if isinstance(value, bool):
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if isinstance(value, (int, float)):
        result = float(value)
    elif isinstance(value, str):
        try:
            result = float(value.strip())
        except ValueError:
            raise ConfigError(f"{key}: expected a number, got {value!r}") from None
    else:
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if not math.isfinite(result):
        raise ConfigError(f"{key}: must be finite, got {value!r}")
    return result


def _bits(value: Any, key: str) -> int:
    bits = _as_int(value, key)
    if bits != 0 and not 2 <= bits <= 24:
        raise ConfigError(f"{key}: must be 0 (off) or between 2 and 24, got {bits}")
    return bits


def _overflow_rate(value: Any, key: str) -> float:
    q = _as_float(value, key)
    if not 0.0 <= q < 1.0:
        raise ConfigError(f"{key}: must satisfy 0 <= rate < 1, got {q}")
    return q


def _positive(value: Any, key: str) -> float:
    x = _as_float(value, key)
    if x <= 0:
        raise ConfigError(f"{key}: must be > 0, got {x}")
    return x


def _non_negative(value: Any, key: str) -> float:
    x = _as_float(value, key)
    if x < 0:
        raise ConfigError(f"{key}: must be >= 0, got {x}")
    return x


def _resistance(value: Any, key: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, str) and value.strip().lower() in ("none", "default", ""):
        return None
    r = _positive(value, key)
    _check_conductance(r, key)
    return r


def _check_conductance(r: float, label: str) -> None:
    g = 1.0 / r
    if not F32_MIN <= g <= F32_MAX:
        raise ConfigError(
            f"{label}: {r:g} ohm gives a conductance of {g:g} S, outside float32's normal range "
            f"[{F32_MIN:.4g}, {F32_MAX:.4g}] S in which the op stores conductances; "
            f"use {R_MIN:.4g} to {R_MAX:.4g} ohm"
        )


def _voltage(value: Any, key: str) -> float:
    return check_normal_f32(_positive(value, key), key, "V")


def _input_range(value: Any, key: str) -> float:
    x = _non_negative(value, key)
    return x if x == 0 else check_normal_f32(x, key, hint=" (or 0: each input vector scaled by its own max |x|)")


def _seed(value: Any, key: str) -> int:
    s = _as_int(value, key)
    if s < 0:
        raise ConfigError(f"{key}: must be >= 0, got {s}")
    return s


def _device(value: Any, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{key}: expected a device name such as \"ideal\", got {value!r}")
    return value.strip()


def _scheme(value: Any, key: str) -> str:
    if not isinstance(value, str) or value.strip().lower() not in SCHEMES:
        raise ConfigError(f"{key}: must be one of {', '.join(SCHEMES)}, got {value!r}")
    return value.strip().lower()


def _d2d_std(value: Any, key: str) -> float | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("default", "")):
        return None
    return _non_negative(value, key)


def _programming(value: Any, key: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or value.strip().lower() not in ("naive", "ideal"):
        raise ConfigError(f"{key}: must be naive or ideal, got {value!r}")
    return value.strip().lower()


def _device_params(value: Any, key: str) -> dict[str, Any] | None:
    """`--device-param name=value` strings, or the parameters of a TOML `[device]` table."""
    from memcc.devices import parse_parameters
    from memcc.devices.parameters import from_config_value

    if value is None:
        return None
    if isinstance(value, Mapping):
        return {str(k): from_config_value(str(k), v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return parse_parameters(list(value))
    raise ConfigError(f"{key}: expected name=value strings or a table, got {value!r}")


def _programming_options(value: Any, key: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ConfigError(f"{key}: expected a table of programming options, got {value!r}")
    from memcc.passes.base import PROGRAMMING_OPTIONS, check_known_keys

    check_known_keys(value, PROGRAMMING_OPTIONS, f"{key}: unknown option", "known options")
    return {k: v for k, v in value.items() if v is not None} or None


def _nonidealities(value: Any, key: str) -> list | None:
    """Text specs and/or tables ({name = ..., key = value}), each checked by building its pass;
    returned as canonical tables ({"name": ..., **settings}) so a report can record them."""
    if value is None:
        return None
    from memcc.passes import NonidealityPass, make_nonideality

    if isinstance(value, (str, Mapping)):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{key}: expected a list of specs like \"finite_states:n=16\" or [[nonideality]] tables, got {value!r}")
    out = []
    for item in value:
        p = make_nonideality(item)
        out.append(p.spec() if isinstance(p, NonidealityPass) else p)
    return out


PARSERS: dict[str, Callable[[Any, str], Any]] = {
    "device": _device,
    "scheme": _scheme,
    "tile": parse_tile,
    "dac_bits": _bits,
    "adc_bits": _bits,
    "adc_overflow_rate": _overflow_rate,
    "max_input_voltage": _voltage,
    "input_range": _input_range,
    "r_on": _resistance,
    "r_off": _resistance,
    "seed": _seed,
    "d2d_std": _d2d_std,
    "programming": _programming,
    "device_params": _device_params,
    "programming_options": _programming_options,
    "nonidealities": _nonidealities,
}


def flag_number(text: str | None, flag: str, kind: Callable[[str], Any]):
    """A numeric command-line flag (None when not given); ConfigError naming the flag otherwise."""
    if text is None:
        return None
    try:
        return kind(text)
    except ValueError:
        raise ConfigError(f"{flag}: expected {'an integer' if kind is int else 'a number'}, got {text!r}") from None


def validate(settings: Mapping[str, Any], *, source: str = "",
             labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Check every key and value; return the parsed settings. Keys may use dashes.

    `labels` names a key in messages as the user wrote it (e.g. a TOML table) instead of by
    its internal name."""
    prefix = f"{source}: " if source else ""
    labels = labels or {}
    out: dict[str, Any] = {}
    for raw_key, value in settings.items():
        key = str(raw_key).replace("-", "_")
        if key == "tile_shape":
            key = "tile"
        elif key == "nonideality":  # the TOML array of tables [[nonideality]]
            key = "nonidealities"
        parser = PARSERS.get(key)
        if parser is None:
            raise ConfigError(
                f"{prefix}unknown setting {raw_key!r}; known settings: {', '.join(COMPILE_KEYS)}"
            )
        if key in out:
            raise ConfigError(f"{prefix}setting {key!r} is given twice")
        try:
            out[key] = parser(value, labels.get(key, key))
        except ConfigError as exc:
            raise ConfigError(f"{prefix}{exc}") from None
    return out


def _check_combination(settings: Mapping[str, Any]) -> None:
    r_on, r_off = settings.get("r_on"), settings.get("r_off")
    if r_on is not None and r_off is not None and not r_on < r_off:
        raise ConfigError(f"r_on ({r_on:g} ohm) must be smaller than r_off ({r_off:g} ohm)")
    if r_on is not None and r_off is not None:
        check_window(r_on, r_off)


def load_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate a TOML config file; return only the keys it sets."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"config file {str(p)!r}: no such file")
    if p.is_dir():
        raise ConfigError(f"config file {str(p)!r} is a directory")
    try:
        with open(p, "rb") as f:
            data = _toml.load(f)
    except _toml.TOMLDecodeError as exc:
        raise ConfigError(f"config file {str(p)!r} is not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {str(p)!r} cannot be read: {exc}") from None
    return parse_config_dict(data, source=f"config file {str(p)!r}")


def parse_config_dict(data: Mapping[str, Any], *, source: str = "config") -> dict[str, Any]:
    """Validate the contents of a config file (top-level keys and/or a [compile] table)."""
    flat: dict[str, Any] = {}
    data = dict(data)
    device_table = data.get("device")
    if isinstance(device_table, dict):
        table = dict(device_table)
        name = table.pop("name", None)
        if name is None:
            raise ConfigError(f"{source}: the [device] table needs name = \"<device model>\"")
        data["device"] = name
        data["device_params"] = table or None
    labels: dict[str, str] = {}
    if isinstance(data.get("programming"), dict):
        # The table mixes the method and the options that compile() takes apart; messages must
        # still name what the user wrote, [programming] and its keys, not the internal names.
        from memcc.passes.base import PROGRAMMING_OPTIONS, check_known_keys

        table = dict(data.pop("programming"))
        try:
            check_known_keys(table, ("method", *PROGRAMMING_OPTIONS), "[programming]: unknown key", "accepted keys",
                         hints={"name": ' (the method is given as method = "naive" or "ideal")'})
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None
        if "method" in table:
            data["programming"] = table.pop("method")
            labels["programming"] = "[programming] method"
        data["programming_options"] = table
        labels["programming_options"] = "[programming]"
    for key, value in data.items():
        if key == "compile" and isinstance(value, dict):
            for sub_key, sub_value in value.items():
                norm = sub_key.replace("-", "_")
                if norm in flat:
                    raise ConfigError(f"{source}: setting {norm!r} is given twice")
                flat[norm] = sub_value
        else:
            norm = key.replace("-", "_")
            if norm in flat:
                raise ConfigError(f"{source}: setting {norm!r} is given twice")
            flat[norm] = value
    settings = validate(flat, source=source, labels=labels)
    try:
        _check_combination(settings)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    return settings


def resolve(
    file_settings: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Merge defaults < config file < overrides (None values in overrides are ignored).

    Returns keyword arguments for `memcc.compiler.compile` (with `tile` as a tuple).
    """
    merged = dict(DEFAULTS)
    for layer in (file_settings, overrides):
        if not layer:
            continue
        given = validate({k: v for k, v in layer.items() if v is not None})
        # Parameter tables merge name by name: a flag overrides one parameter of the file's table.
        for key in ("device_params", "programming_options"):
            if given.get(key) is not None and merged.get(key) is not None:
                given[key] = {**merged[key], **given[key]}
        merged.update(given)
    _check_combination(merged)
    return merged
