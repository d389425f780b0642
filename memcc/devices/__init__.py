"""Device models for memcc, looked up by name.

    >>> from memcc.devices import get_device, list_devices
    >>> list_devices()
    ['data_driven', 'ideal', 'linear_ion_drift', 'stanford_pku', 'vteam']
    >>> get_device("ideal", r_on=2e3).g_on
    0.0005
    >>> get_device("vteam", r_on="50:std=10:min=1")      # r_on sampled once per device
    VTEAM(r_on=50:std=10:min=1)

Every device, `ideal` included, is a :class:`DeviceModel` (alias `Device`): see
`memcc.devices.base` for what the compiler uses of it and `memcc.devices.model` for the physics
interface. Parameters may be numbers, the text form ``"50:std=10:min=1:max=90"``, a
:class:`Distribution`, or a table ``{"mean": 50, "std": 10}``; unknown names and bad values raise
`ParameterError` (a ConfigError) naming the closest parameter.

Adding a device model: subclass `DeviceModel` (its docstring lists what to implement) and decorate
the class with ``@register_device("name")``; memcc's own models are listed in
`memcc.devices.registry.BUILTIN` and imported on first use.
"""

from __future__ import annotations

from collections.abc import Mapping

from memcc.devices.base import Device, nominal_device, nominal_window, programming_methods
from memcc.devices.model import DeviceModel, Param
from memcc.devices.parameters import Distribution, ParameterError, from_config_value, parse_parameters
from memcc.devices.registry import register_device


def list_devices() -> list[str]:
    """Names accepted by `get_device`, sorted."""
    from memcc.devices.registry import registered

    return sorted(registered())


def device_class(name: str) -> type:
    """The `DeviceModel` subclass registered as `name` (case-insensitive; ConfigError if unknown)."""
    from memcc.devices.registry import lookup

    return lookup(name)


def get_device(name, **params) -> DeviceModel:
    """The device called `name` (case-insensitive), with `params` overriding its defaults.

    `name` may also be a `DeviceModel` instance (returned as is, or a copy with `params` changed)
    or class. Parameters given as None keep the default; values may be numbers, words (for
    choice parameters such as ``window``), text forms (``"50:std=10:min=1"``), `Distribution`s
    or ``{"mean": ..., "std": ..., "min": ..., "max": ...}`` tables. Raises ConfigError
    (`ParameterError`) for unknown names, unknown parameters and bad values.
    """
    params = {k: _value(k, v) for k, v in params.items() if v is not None}
    if isinstance(name, DeviceModel):
        return name.replace(**params) if params else name
    cls = name if isinstance(name, type) and issubclass(name, DeviceModel) else device_class(name)
    return cls(**params)


def _value(name: str, value):
    if isinstance(value, Mapping):
        return from_config_value(name, value)
    return value


__all__ = [
    "Device", "DeviceModel", "Param", "Distribution", "ParameterError",
    "get_device", "list_devices", "device_class", "register_device",
    "nominal_device", "nominal_window", "programming_methods", "parse_parameters",
]
