"""The name → device-class registry behind `memcc.devices.get_device`.

memcc's own models are registered lazily (their modules are imported on first look-up, see
`BUILTIN`); `register_device` adds more.
"""

from __future__ import annotations

import importlib

from memcc.errors import ConfigError

#: memcc's built-in devices: name → "module:Class" (imported on first use).
BUILTIN = {
    "ideal": "memcc.devices.ideal:IdealDevice",
    "vteam": "memcc.devices.vteam:VTEAM",
    "linear_ion_drift": "memcc.devices.linear_ion_drift:LinearIonDrift",
    "stanford_pku": "memcc.devices.stanford_pku:StanfordPKU",
    "data_driven": "memcc.devices.data_driven:DataDriven",
}

_REGISTRY: dict[str, type] = {}


def register_device(name: str):
    """Class decorator: make a `DeviceModel` subclass available as `get_device(name)`."""

    def decorate(cls):
        from memcc.devices.model import DeviceModel

        if not (isinstance(cls, type) and issubclass(cls, DeviceModel)):
            raise TypeError(f"register_device({name!r}): {cls!r} is not a memcc.devices.DeviceModel subclass")
        key = name.lower()
        if key in _REGISTRY and _REGISTRY[key] is not cls:
            raise ValueError(f"device name {name!r} is already registered by {_REGISTRY[key].__name__}")
        _REGISTRY[key] = cls
        return cls

    return decorate


def _load(key: str) -> type:
    module, _, cls_name = BUILTIN[key].partition(":")
    cls = getattr(importlib.import_module(module), cls_name)
    _REGISTRY.setdefault(key, cls)
    return _REGISTRY[key]


def registered() -> dict[str, type]:
    """name → class of every device (built-in ones imported now)."""
    for key in BUILTIN:
        if key not in _REGISTRY:
            _load(key)
    return dict(_REGISTRY)


def lookup(name: str) -> type:
    if not isinstance(name, str):
        raise ConfigError(f"device must be a name (str) or a DeviceModel, got {name!r}")
    key = name.strip().lower()
    for k in (key, key.replace("-", "_")):  # "linear-ion-drift" works too
        if k in _REGISTRY:
            return _REGISTRY[k]
        if k in BUILTIN:
            return _load(k)
    import difflib

    known = sorted(set(_REGISTRY) | set(BUILTIN))
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ConfigError(f"unknown device {name!r} (known devices: {', '.join(known)}){hint}")
