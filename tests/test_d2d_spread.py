"""Device-to-device spread (`DeviceModel.with_d2d_std`): every sampled device is valid, for every
registered model and any finite spread, and small spreads sample what they always did."""

from __future__ import annotations

import math

import numpy as np
import pytest
from onnx import numpy_helper

import memcc
from memcc.compiler import compile_with_report
from memcc.devices import Distribution, ParameterError, get_device, list_devices, nominal_device
from memcc.passes import CompileOptions
from models import old_opset_model

STDS = [0.1, 0.3, 1.0, 3.0]
N = 4000


@pytest.fixture(scope="module")
def small():
    """Conv + BatchNorm + Gemm: 744 devices in the double scheme."""
    return old_opset_model(13)


def check_valid(device, n=N, seed=7):
    """Sample n devices (the constructor runs the model's own checks) and check the limits."""
    sampled = device.sample(n, seed=seed)
    r_on, r_off = np.asarray(sampled.r_on), np.asarray(sampled.r_off)
    assert np.all(r_on < r_off)
    limits = device.resistance_limits()
    for name, values in (("r_on", r_on), ("r_off", r_off)):
        lo, hi = limits[name]
        assert np.all(values > lo) and np.all(values < hi) and np.all(values > 0)
    lo, hi = sampled.state_bounds()
    assert np.all(np.asarray(lo) < np.asarray(hi))
    return sampled


@pytest.mark.parametrize("std", STDS)
@pytest.mark.parametrize("name", list_devices())
def test_d2d_samples_are_valid_devices(name, std):
    device = get_device(name).with_d2d_std(std)
    check_valid(device)
    # the nominal device (the window the weights are mapped onto) is the unvaried one
    assert nominal_device(device).parameters() == get_device(name).parameters()


@pytest.mark.parametrize("std", STDS)
@pytest.mark.parametrize("name", list_devices())
def test_compile_with_d2d_spread(small, name, std):
    """The path of `memcc compile --d2d-std` and of `memcc sweep --vary d2d-std=...`."""
    model, _ = small
    _, report = compile_with_report(model, device=name, d2d_std=std, seed=1)
    assert report.programming["total"]["n_programmed"] == 744


@pytest.mark.parametrize("fixed", ["r_on", "r_off"])
@pytest.mark.parametrize("name", ["vteam", "data_driven", "stanford_pku"])
def test_d2d_spread_with_one_resistance_fixed(name, fixed):
    value = get_device(name).parameters()[fixed]
    device = CompileOptions(device=name, device_params={fixed: value}, d2d_std=3.0).validated().make_device()
    sampled = check_valid(device)
    assert np.all(getattr(sampled, fixed) == value)


def test_stanford_pku_r_on_limit_follows_its_equations():
    """The smallest r_on is the read resistance at zero gap, read_voltage / (I_0 sinh(read_voltage / V_0))."""
    params = dict(I_0=2e-3, V_0=0.3, read_voltage=0.2)
    r_min = 0.2 / (2e-3 * math.sinh(0.2 / 0.3))
    lo, hi = get_device("stanford_pku", **params).resistance_limits()["r_on"]
    assert lo == pytest.approx(r_min, rel=1e-12) and hi == math.inf
    get_device("stanford_pku", r_on=r_min * (1 + 1e-9), **params)
    with pytest.raises(ParameterError, match="ON gap"):
        get_device("stanford_pku", r_on=r_min * (1 - 1e-9), **params)
    # an r_on nominal below the limit stays the clear error it was
    with pytest.raises(ParameterError, match="ON gap"):
        get_device("stanford_pku", r_on=0.5 * r_min, **params).with_d2d_std(0.1)


def test_stanford_pku_limit_with_stochastic_current_scale():
    """With I_0 varying across devices too, r_on is kept above the worst case (smallest I_0)."""
    device = get_device("stanford_pku", I_0=Distribution(1e-3, 1e-4, 8e-4, 1.2e-3))
    lo = device.resistance_limits()["r_on"][0]
    assert lo == pytest.approx(0.1 / (8e-4 * math.sinh(0.1 / 0.25)), rel=1e-12)
    check_valid(device.with_d2d_std(1.0))


def _old_distribution(mean, std, middle, name):
    """What with_d2d_std made before the fix: ±3 std, 1e-3 mean floor, clipped at the middle."""
    low, high = max(mean - 3 * std * mean, 1e-3 * mean), mean + 3 * std * mean
    if name == "r_on":
        high = min(high, middle)
    else:
        low = max(low, middle)
    return Distribution(mean, std * mean, low, high)


@pytest.mark.parametrize("name", list_devices())
def test_small_d2d_spread_is_unchanged(name):
    """At 10 % no new clip binds: the same distributions (so bit-identical samples) as before,
    with the requested mean and std."""
    std = 0.1
    nominal = get_device(name).parameters()
    device = get_device(name).with_d2d_std(std)
    middle = math.sqrt(nominal["r_on"] * nominal["r_off"])
    sampled = device.sample(N, seed=11)
    for key in ("r_on", "r_off"):
        assert device.parameters()[key] == _old_distribution(nominal[key], std, middle, key)
        values = np.asarray(getattr(sampled, key))
        mean, sd = nominal[key], std * nominal[key]
        assert abs(values.mean() - mean) < 4 * sd / math.sqrt(N) + 0.005 * mean  # (data_driven's r_off tail is clipped)
        assert abs(values.std() - sd) < 0.08 * sd


def test_wide_d2d_spread_is_reproducible(small):
    model, _ = small

    def conductances(mem):
        return [numpy_helper.to_array(t) for t in mem.graph.initializer]

    a = conductances(memcc.compile(model, device="data_driven", d2d_std=3.0, seed=4))
    b = conductances(memcc.compile(model, device="data_driven", d2d_std=3.0, seed=4))
    assert len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))
    device = get_device("vteam").with_d2d_std(3.0)
    assert np.array_equal(device.sample(100, seed=2).r_on, device.sample(100, seed=2).r_on)


@pytest.mark.parametrize("name", list_devices())
@pytest.mark.parametrize("ratio", [1.5, 3.0, 20.0])
def test_sweep_ratio_axis_samples_valid_devices(name, ratio):
    # `memcc sweep --vary ratio` builds the two distributions itself (sweep._apply_ratio)
    from memcc.sweep import _apply_ratio

    settings = {"device": name, "d2d_std": 0.3}
    _apply_ratio(settings, ratio)
    check_valid(get_device(name, **settings["device_params"]))
