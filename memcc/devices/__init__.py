"""Device models for memcc, looked up by name.

    >>> from memcc.devices import get_device, list_devices
    >>> list_devices()
    ['ideal']
    >>> get_device("ideal", r_on=2e3).g_on
    0.0005

Adding a device model: write one module per model in this package (e.g. `vteam.py`) holding a
frozen dataclass that subclasses `Device`, decorated with `@register_device("vteam")`, and add
the module's name to `_BUILTIN_MODULES` below. Unknown names and bad parameters raise ConfigError.
"""

from __future__ import annotations

import importlib

from memcc.devices.base import Device
from memcc.devices.registry import register_device
from memcc.errors import ConfigError

#: Modules of this package imported on first use; each registers its device class(es).
_BUILTIN_MODULES = ("ideal",)
_loaded = False


def _load_builtins() -> None:
    global _loaded
    if not _loaded:
        for mod in _BUILTIN_MODULES:
            importlib.import_module(f"{__name__}.{mod}")
        _loaded = True


def list_devices() -> list[str]:
    """Names accepted by `get_device`, sorted."""
    from memcc.devices.registry import registered

    _load_builtins()
    return sorted(registered())


def get_device(name: str | Device, **params) -> Device:
    """The device called `name` (case-insensitive), with `params` overriding its defaults.

    Parameters given as None keep the default. A `Device` instance is returned as is (or with
    `params` replaced). Raises ConfigError for unknown names, unknown parameters and bad values.
    """
    from dataclasses import replace

    from memcc.devices.registry import lookup

    params = {k: v for k, v in params.items() if v is not None}
    if isinstance(name, Device):
        cls, base = type(name), name
    else:
        _load_builtins()
        cls, base = lookup(name), None
    unknown = sorted(set(params) - set(cls.parameter_names()))
    if unknown:
        raise ConfigError(
            f"device {cls.name!r} has no parameter(s) {', '.join(unknown)} "
            f"(it has: {', '.join(cls.parameter_names())})"
        )
    try:
        return replace(base, **params) if base is not None else cls(**params)
    except TypeError as e:  # pragma: no cover - wrong types caught by validate()
        raise ConfigError(f"device {cls.name!r}: {e}") from None


__all__ = ["Device", "get_device", "list_devices", "register_device"]
