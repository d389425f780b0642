"""`NonlinearIV`: devices pass the current of their I-V curve at the applied voltage.

The op multiplies f(v) instead of v (docs/op-spec.md: f(v) = iv_a·sinh(iv_b·v)), with the
conductances as programmed, i.e. as the device defines them:

- ``data_driven``: I = a·G·sinh(b·V), G = 1/R  →  iv_a = a, iv_b = b (a_p = a_n and b_p = b_n
  required: the op has one curve for both polarities);
- ``stanford_pku``: I = I0·exp(−g/g0)·sinh(V/V0) with the conductance defined at the read
  voltage, G = I(v_read)/v_read  →  f(v) = v_read·sinh(v/V0)/sinh(v_read/V0), i.e.
  iv_a = v_read / sinh(v_read/V0), iv_b = 1/V0;
- devices with a linear I-V (ideal, linear_ion_drift, vteam): an error, there is nothing to
  model.

Parameters are the nominal device's (distributions at their mean). No parameters of its own.
"""

from __future__ import annotations

import math

import numpy as np

from .base import fail
from .runtime_base import RuntimeNonideality


def _scalar(p: dict, name: str, device: str) -> float:
    v = np.asarray(p[name], dtype=float)
    if v.size != 1:
        fail("nonlinear", f"device {device!r}: parameter {name!r} must be one value, got {v.size}")
    return float(v.reshape(()))


def iv_coefficients(device) -> tuple[float, float]:
    """(iv_a, iv_b) of `device` (a `DeviceModel` without distributions); ConfigError if linear."""
    name = device.name
    p = device._need()
    if name == "data_driven":
        a_p, a_n = _scalar(p, "a_p", name), _scalar(p, "a_n", name)
        b_p, b_n = _scalar(p, "b_p", name), _scalar(p, "b_n", name)
        if not (math.isclose(a_p, a_n) and math.isclose(b_p, b_n)):
            fail("nonlinear", f"device {name!r}: asymmetric I-V (a_p={a_p:g}, a_n={a_n:g}, b_p={b_p:g}, "
                              f"b_n={b_n:g}); the op models one sinh curve for both polarities")
        return a_p, b_p
    if name == "stanford_pku":
        v_read, v0 = _scalar(p, "read_voltage", name), _scalar(p, "V_0", name)
        return v_read / math.sinh(v_read / v0), 1.0 / v0
    fail("nonlinear", f"device {name!r} has a linear I-V (I = G·V); nothing to model")


class NonlinearIV(RuntimeNonideality):
    """The device model's I-V nonlinearity at read (``iv_a``, ``iv_b`` from the device)."""

    name = "nonlinear"
    PARAMETERS = ()

    def settings(self) -> dict:
        return {}

    def prepare(self, ctx) -> None:
        self._iv = iv_coefficients(ctx.nominal_device)

    def attributes(self, ctx, rec) -> dict:
        a, b = self._iv
        return {"iv_a": float(a), "iv_b": float(b)}

    def summary(self, ctx) -> dict:
        return {"iv_a": float(self._iv[0]), "iv_b": float(self._iv[1])}
