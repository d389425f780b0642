"""memcc.devices: one registry for the ideal device and the four switching models."""

from __future__ import annotations

import numpy as np
import pytest

from memcc.devices import (
    Device, DeviceModel, Distribution, ParameterError, device_class, get_device, list_devices,
    nominal_device, nominal_window, programming_methods, register_device,
)
from memcc.devices.ideal import IdealDevice
from memcc.devices.vteam import VTEAM
from memcc.errors import ConfigError
from memcc.programming import program

ALL = ["data_driven", "ideal", "linear_ion_drift", "stanford_pku", "vteam"]


def test_lists_all_five_and_each_is_a_device_model():
    assert list_devices() == ALL
    for name in ALL:
        d = get_device(name)
        assert isinstance(d, DeviceModel) and isinstance(d, Device)
        assert d.name == name and type(d) is device_class(name)
        assert 0 < d.g_off < d.g_on
        assert not d.is_stochastic


def test_lookup_is_case_and_dash_insensitive():
    assert isinstance(get_device("VTEAM"), VTEAM)
    assert get_device("Linear-Ion-Drift").name == "linear_ion_drift"


def test_unknown_device_and_parameter_errors_carry_hints():
    with pytest.raises(ConfigError, match=r"unknown device 'vteem'.*did you mean 'vteam'"):
        get_device("vteem")
    with pytest.raises(ConfigError, match=r"no parameter 'r_onn' \(did you mean 'r_on'\?\)"):
        get_device("vteam", r_onn=3)
    with pytest.raises(ConfigError, match="no parameter 'k_on'"):
        get_device("ideal", k_on=3)  # the ideal device has no dynamics parameters
    with pytest.raises(ConfigError, match="r_on"):
        get_device("vteam", r_on="abc")
    with pytest.raises(ConfigError, match="std"):
        get_device("vteam", r_on="50:std=-1")
    with pytest.raises(ConfigError, match="device must be a name"):
        get_device(3)


def test_parameter_forms_are_equivalent():
    want = Distribution(50.0, 10.0, min=1.0)
    for value in ("50:std=10:min=1", want, {"mean": 50, "std": 10, "min": 1}):
        d = get_device("vteam", r_on=value)
        assert d.is_stochastic and d.parameters()["r_on"] == want
    assert get_device("vteam", r_on="60").parameters()["r_on"] == 60.0
    assert get_device("vteam", r_on=None).parameters()["r_on"] == 50.0  # None keeps the default
    assert get_device("vteam", window="joglekar").parameters()["window"] == "joglekar"
    # std = 0 is a plain value: not stochastic
    assert not get_device("vteam", r_on=Distribution(55.0)).is_stochastic
    # an instance: returned as is, or changed
    d = get_device("vteam")
    assert get_device(d) is d and get_device(d, r_off=2000).parameters()["r_off"] == 2000.0


def test_nominal_device_uses_clipped_means():
    d = get_device("vteam", r_on="50:std=10:min=60", r_off={"mean": 900, "std": 50})
    nom = nominal_device(d)
    assert not nom.is_stochastic
    assert nominal_window(d) == (60.0, 900.0)  # mean 50 clipped to min 60
    assert nominal_device(nom) is nom
    sampled = d.sample(1000, seed=3)
    assert sampled.r_on.shape == (1000,) and sampled.r_on.min() >= 60.0
    assert np.std(sampled.r_off) > 20


def test_programming_methods():
    assert programming_methods(get_device("ideal")) == ("ideal",)
    for name in ("vteam", "linear_ion_drift", "stanford_pku", "data_driven"):
        assert programming_methods(device_class(name))[0] == "naive"


def test_ideal_device_is_linear_and_set_to_target():
    d = get_device("ideal", r_on=2e3)
    assert d.g_on == 1 / 2e3 and d.g_off == 1 / 1e5
    g = np.array([0.0, 1e-5, 3e-4, 5e-4, 1.0])
    np.testing.assert_array_equal(d.conductance(d.state_for_conductance(g)), np.clip(g, 1e-5, 5e-4))
    np.testing.assert_allclose(d.current(np.array([2e-4]), 0.3), [6e-5])
    s = np.array([2e-4])
    np.testing.assert_array_equal(d.apply_pulse(s, 5.0, 1.0), s)  # no dynamics
    res = program(d, [1e-4, 4e-4], method="ideal")
    np.testing.assert_array_equal(res.conductances, [1e-4, 4e-4])
    # with variability each device has its own window
    v = get_device("ideal", r_on="1000:std=200:min=100").sample(500, seed=1)
    res = program(v, np.full(500, 1e-3), method="ideal")
    np.testing.assert_allclose(res.conductances, np.minimum(1e-3, v.g_on))
    assert res.out_of_range.sum() == np.count_nonzero(v.g_on < 1e-3) > 0


def test_register_device():
    from memcc.devices.registry import _REGISTRY

    @register_device("test-ideal-2")
    class Ideal2(IdealDevice):
        name = "test-ideal-2"

    try:
        assert "test-ideal-2" in list_devices()
        assert isinstance(get_device("test-ideal-2", r_on=10.0), Ideal2)
        with pytest.raises(ValueError, match="already registered"):
            register_device("test-ideal-2")(VTEAM)
        with pytest.raises(TypeError, match="DeviceModel"):
            register_device("test-not-a-model")(object)
    finally:
        del _REGISTRY["test-ideal-2"]
    assert "test-ideal-2" not in list_devices()
    assert issubclass(ParameterError, ConfigError)
