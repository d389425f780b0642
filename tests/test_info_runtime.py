"""`memcc info`: the run-time settings of the MemristiveMatMul nodes (read noise, drift, I-V,
fused Relu/pooling) in the table and in --json, and where the device model name comes from."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

import memcc
from memcc import info as minfo
from models import init, make_model, randn, rng, vinfo

PKG_PARENT = str(Path(os.path.abspath(memcc.__file__)).parent.parent)


def cnn_model():
    """Conv → Relu → MaxPool 2x2 → Flatten → Gemm → Relu → Gemm: after compilation the first conv
    holds relu and pool, the first Gemm relu, the last nothing."""
    g = rng(21)
    nodes = [
        helper.make_node("Conv", ["x", "Wc"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["cr"]),
        helper.make_node("MaxPool", ["cr"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "W1"], ["h"], name="fc1"),
        helper.make_node("Relu", ["h"], ["hr"]),
        helper.make_node("Gemm", ["hr", "W2"], ["y"], name="fc2"),
    ]
    inits = [init(randn(g, 4, 2, 3, 3), "Wc"), init(randn(g, 16, 6), "W1"), init(randn(g, 6, 3), "W2")]
    return make_model(nodes, [vinfo("x", [1, 2, 4, 4])], [vinfo("y", [1, 3])], inits)


@pytest.fixture(scope="module")
def noisy():
    """Compiled for vteam with read noise and drift, like
    `memcc compile --device vteam --nonideality read_noise:std=0.1 --nonideality drift:nu=0.05`."""
    return memcc.compile(cnn_model(), device="vteam", programming="ideal",
                         nonidealities=["read_noise:std=0.1", "drift:nu=0.05"])


def layer(info, name):
    return next(item for item in info["layers"] if item["name"] == name)


def test_describe_lists_runtime_attributes(noisy):
    info = minfo.describe(noisy)
    conv, fc1, fc2 = (layer(info, n) for n in ("conv", "fc1", "fc2"))
    for item in (conv, fc1, fc2):
        # float32 attributes read back as the value that was set, not 0.10000000149011612
        assert item["read_noise_std"] == 0.1
        assert (item["drift_nu"], item["drift_nu_std"], item["drift_t0"]) == (0.05, 0.0, 1.0)
        assert item["time_input"] == "memcc_time_s"
        assert (item["iv_a"], item["iv_b"]) == (0.0, 0.0)
        assert item["weight_scale"] > 0 and isinstance(item["noise_seed"], int)
        assert item["other_attributes"] == {}
    assert (conv["activation"], conv["max_pool"]) == ("RELU", [2, 2])
    assert (conv["strides"], conv["pads"], conv["dilations"], conv["auto_pad"]) == ([1, 1], [1, 1, 1, 1], [1, 1], "NOTSET")
    assert (fc1["activation"], fc1["max_pool"], fc1["strides"]) == ("RELU", None, None)
    assert fc2["activation"] == "NONE"
    assert conv["runtime_effects"] == [
        "read noise 10 %", "drift nu 0.05 t0 1 s (time input memcc_time_s)", "relu", "pool 2x2",
    ]
    assert fc2["runtime_effects"] == conv["runtime_effects"][:2]
    # the op does not say which device produced the conductances: the compiler records it
    assert info["device"] == "vteam"
    json.dumps(info)


def test_table_footer_holds_shared_effects_and_column_the_rest(noisy):
    text = minfo.format_table(minfo.describe(noisy))
    lines = text.splitlines()
    assert lines[0].split()[-1] == "run-time"
    row = {line.split()[0]: line for line in lines[2:5]}
    assert row["conv"].endswith("relu, pool 2x2")
    assert row["fc1"].endswith("relu") and row["fc2"].endswith("-")
    # the model-wide non-idealities appear once, not on every row
    assert "read noise" not in "\n".join(lines[:5])
    assert ("run-time effects (every layer): read noise 10 %, drift nu 0.05 t0 1 s "
            "(time input memcc_time_s)") in lines
    assert "device model: vteam (model metadata 'memcc.device')" in lines


def test_table_without_runtime_effects_has_no_column():
    model = make_model([helper.make_node("MatMul", ["x", "W"], ["y"], name="mm")],
                       [vinfo("x", [2, 3])], [vinfo("y", [2, 4])], [init(randn(rng(22), 3, 4), "W")])
    info = minfo.describe(memcc.compile(model))
    assert layer(info, "mm")["runtime_effects"] == []
    text = minfo.format_table(info)
    assert "run-time" not in text.splitlines()[0]
    assert "run-time effects: none" in text


def test_nonlinear_iv_and_drift_spread():
    model = make_model([helper.make_node("MatMul", ["x", "W"], ["y"], name="mm")],
                       [vinfo("x", [2, 3])], [vinfo("y", [2, 4])], [init(randn(rng(23), 3, 4), "W")])
    mem = memcc.compile(model, device="stanford_pku", programming="ideal",
                        nonidealities=["nonlinear", "drift:nu=0.05:nu_std=0.01"])
    info = minfo.describe(mem)
    mm = layer(info, "mm")
    assert mm["iv_a"] > 0 and mm["iv_b"] > 0 and mm["drift_nu_std"] == 0.01
    effects = mm["runtime_effects"]
    assert effects[0] == "drift nu 0.05 +- 0.01 t0 1 s (time input memcc_time_s)"
    assert effects[1].startswith("I-V sinh (a ") and len(effects) == 2
    # one layer: everything is in the footer, nothing in a column
    text = minfo.format_table(info)
    assert "run-time effects (the layer): drift nu 0.05 +- 0.01" in text
    assert "run-time" not in text.splitlines()[0]


def test_device_name_missing_from_model_metadata(noisy):
    # models compiled before the compiler recorded the device, or edited by other tools
    model = onnx.ModelProto()
    model.CopyFrom(noisy)
    del model.metadata_props[:]
    info = minfo.describe(model)
    assert info["device"] is None
    assert "device model: not recorded in the model (the compile report names it)" in minfo.format_table(info)


def test_unknown_attributes_are_kept():
    node = helper.make_node("MemristiveMatMul", ["x", "G"], ["y"], domain="ai.memcc", name="m",
                            weight_scale=2.0, future_knob=3, read_noise_std=0.05)
    item = minfo.describe_layer(node, [2, 3, 4])
    assert item["other_attributes"] == {"future_knob": 3}
    assert item["runtime_effects"] == ["read noise 5 %"]
    assert (item["K"], item["N"], item["weight_scale"]) == (3, 4, 2.0)


def test_cli_info_table_and_json(noisy, tmp_path):
    path = tmp_path / "mem.onnx"
    onnx.save(noisy, str(path))
    env = dict(os.environ, PYTHONPATH=PKG_PARENT + os.pathsep + os.environ.get("PYTHONPATH", ""))

    def cli(*args):
        proc = subprocess.run([sys.executable, "-m", "memcc", "info", str(path), *args],
                              capture_output=True, text=True, cwd=PKG_PARENT, env=env, timeout=300)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    assert "run-time effects (every layer): read noise 10 %" in cli()
    data = json.loads(cli("--json"))
    conv = layer(data, "conv")
    assert (conv["read_noise_std"], conv["drift_nu"], conv["activation"], conv["max_pool"]) == (0.1, 0.05, "RELU", [2, 2])
    assert data["device"] == "vteam"
    np.testing.assert_equal([item["iv_b"] for item in data["layers"]], [0.0, 0.0, 0.0])


def test_compile_records_the_device_model():
    for device in ("ideal", "vteam"):
        mem = memcc.compile(cnn_model(), device=device, seed=0)
        meta = {p.key: p.value for p in mem.metadata_props}
        assert meta[minfo.DEVICE_METADATA_KEY] == device
        assert minfo.describe(mem)["device"] == device
