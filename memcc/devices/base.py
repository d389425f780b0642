"""What the compiler needs from a device: `Device` (= `DeviceModel`) and `nominal_device`.

Every memcc device, `ideal` included, is a :class:`memcc.devices.model.DeviceModel`: named
parameters (numbers, words, or :class:`~memcc.devices.parameters.Distribution` objects sampled
once per device), a conductance range ``[g_off, g_on] = [1/r_off, 1/r_on]`` and the physics that
`memcc.programming` drives. `Device` is kept as the name the compiler's API uses for it.

The compiler uses a device in two ways:

- mapping (`memcc.mapping`, pass `MapWeights`) uses the *nominal* window: `nominal_device(model)`
  replaces every distribution by its mean (clipped to [min, max]);
- programming (pass `ProgramDevices`) samples one parameter set per device
  (`model.sample(n, seed)`) and runs `memcc.programming.program` with the method the device
  supports: a class attribute ``PROGRAMMING_METHODS`` lists them, the first being the default
  (absent: ``("naive", "ideal")``, i.e. pulse programming for the physical models).
"""

from __future__ import annotations

from memcc.devices.model import DeviceModel
from memcc.devices.parameters import Distribution

#: The type of every memcc device (compatibility name of `DeviceModel`).
Device = DeviceModel

DEFAULT_METHODS = ("naive", "ideal")


def programming_methods(device) -> tuple[str, ...]:
    """The programming methods `device` (instance or class) supports; the first is its default."""
    cls = device if isinstance(device, type) else type(device)
    return tuple(getattr(cls, "PROGRAMMING_METHODS", DEFAULT_METHODS))


def nominal_value(value):
    """A Distribution's mean clipped to [min, max]; other values unchanged."""
    if isinstance(value, Distribution):
        return min(max(value.mean, value.min), value.max)
    return value


def nominal_device(model: DeviceModel) -> DeviceModel:
    """The model with every Distribution parameter replaced by its nominal (mean) value."""
    if not model.is_stochastic:
        return model
    values = {k: nominal_value(v) for k, v in model.parameters().items()}
    return type(model)(**values)


def nominal_window(model: DeviceModel) -> tuple[float, float]:
    """(r_on, r_off) of the nominal device, in ohms (the window the weights are mapped onto)."""
    nom = nominal_device(model)
    if nom.n_devices is not None:
        raise ValueError(f"device {model.name!r} holds per-device parameter arrays; it has no nominal window")
    return float(nom.r_on), float(nom.r_off)
