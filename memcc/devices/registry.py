"""The name → device-class registry behind `memcc.devices.get_device`."""

from __future__ import annotations

from memcc.errors import ConfigError

_REGISTRY: dict[str, type] = {}


def register_device(name: str):
    """Class decorator: make a `Device` subclass available as `get_device(name)`."""

    def decorate(cls):
        key = name.lower()
        if key in _REGISTRY and _REGISTRY[key] is not cls:
            raise ValueError(f"device name {name!r} is already registered by {_REGISTRY[key].__name__}")
        _REGISTRY[key] = cls
        return cls

    return decorate


def registered() -> dict[str, type]:
    return dict(_REGISTRY)


def lookup(name: str) -> type:
    if not isinstance(name, str):
        raise ConfigError(f"device must be a name (str) or a Device, got {name!r}")
    try:
        return _REGISTRY[name.lower()]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        raise ConfigError(f"unknown device {name!r} (known devices: {known})") from None
