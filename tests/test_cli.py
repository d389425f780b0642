"""The `memcc` command line, run as `python -m memcc` in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import memcc
from conftest import fifo_reader, library_available

# Run the same memcc the tests import (installed package or development overlay).
# (abspath, not resolve: a development overlay of symlinks must stay the overlay). The
# subprocess runs in that folder, so `-m memcc` cannot pick up a source tree from the cwd.
PKG_PARENT = str(Path(os.path.abspath(memcc.__file__)).parent.parent)


needs_library = pytest.mark.skipif(not library_available(), reason="libmemcc_ops is not built/installed")


def memcc_cli(*args, cwd=None, binary=False):
    """Run `python -m memcc ARGS`; `binary`: stdout and stderr as bytes (a model on stdout)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = PKG_PARENT + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-m", "memcc", *map(str, args)],
        capture_output=True,
        text=not binary,
        cwd=cwd or PKG_PARENT,
        env=env,
        timeout=300,
    )


def assert_user_error(proc, *fragments):
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("memcc: error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


# ---------------------------------------------------------------------------- fixtures


def mlp_model(seed=0) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    inits = [
        numpy_helper.from_array(rng.standard_normal((16, 32)).astype(np.float32) * 0.3, "W1"),
        numpy_helper.from_array(rng.standard_normal(32).astype(np.float32) * 0.1, "B1"),
        numpy_helper.from_array(rng.standard_normal((32, 10)).astype(np.float32) * 0.3, "W2"),
        numpy_helper.from_array(rng.standard_normal(10).astype(np.float32) * 0.1, "B2"),
    ]
    nodes = [
        helper.make_node("Gemm", ["x", "W1", "B1"], ["h"], name="fc1"),
        helper.make_node("Relu", ["h"], ["r"], name="relu"),
        helper.make_node("Gemm", ["r", "W2", "B2"], ["y"], name="fc2"),
    ]
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 10])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def no_weights_model() -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"], name="relu")],
        "nothing",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def mem_model() -> onnx.ModelProto:
    """A hand-written compiled model: one tiled conv layer, one single-column matmul, one digital MatMul."""
    rng = np.random.default_rng(0)
    g_conv = rng.uniform(1e-6, 1e-4, (2, 1 * 3 * 3, 8)).astype(np.float32)
    g_fc = rng.uniform(1e-6, 1e-4, (1, 8 * 4 * 4, 10)).astype(np.float32)
    w_dig = rng.standard_normal((10, 3)).astype(np.float32)
    nodes = [
        helper.make_node(
            "MemristiveMatMul", ["x", "Gc"], ["c"], domain="ai.memcc", name="conv1",
            weight_scale=1e4, kernel_shape=[3, 3], pads=[1, 1, 1, 1], tile_shape=[4, 3], dac_bits=8, adc_bits=6,
        ),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Flatten", ["r"], ["f"], name="flatten"),
        helper.make_node(
            "MemristiveMatMul", ["f", "Gf"], ["h"], domain="ai.memcc", name="fc1",
            weight_scale=1e4, g_ref=5e-5, tile_shape=[64, 0],
        ),
        helper.make_node("MatMul", ["h", "Wd"], ["y"], name="head_digital"),
    ]
    graph = helper.make_graph(
        nodes,
        "mem",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
        [numpy_helper.from_array(g_conv, "Gc"), numpy_helper.from_array(g_fc, "Gf"), numpy_helper.from_array(w_dig, "Wd")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.memcc", 1)])


@pytest.fixture
def mlp_file(tmp_path):
    p = tmp_path / "mlp.onnx"
    onnx.save(mlp_model(), str(p))
    return p


@pytest.fixture
def mem_file(tmp_path):
    p = tmp_path / "mem.onnx"
    onnx.save(mem_model(), str(p))
    return p


def files(folder):
    return sorted(p.name for p in Path(folder).iterdir())


# ---------------------------------------------------------------------------- general


def test_help_and_version():
    proc = memcc_cli("--help")
    assert proc.returncode == 0 and "compile" in proc.stdout and "info" in proc.stdout
    proc = memcc_cli("--version")
    assert proc.returncode == 0 and memcc.__version__ in proc.stdout


def test_compile_help_names_every_nonideality():
    from memcc.passes.nonidealities import NONIDEALITIES

    proc = memcc_cli("compile", "--help")
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())  # argparse wraps the help text
    missing = [name for name in NONIDEALITIES if name not in text]
    assert not missing, f"--nonideality help lacks {missing}"


def test_no_command():
    assert_user_error(memcc_cli(), "COMMAND")


def test_unknown_flag(mlp_file):
    # Reported by the subcommand, whose --help lists the flags it takes.
    assert_user_error(memcc_cli("compile", mlp_file, "--frobnicate"), "--frobnicate", "(see `memcc compile --help`)")


def test_dash_value_hint_for_every_subcommand(mlp_file):
    # "-1e3" is not a plain negative number to argparse, so it is taken for a flag.
    assert_user_error(memcc_cli("compile", mlp_file, "--input-range", "-1e3"),
                      "attached: --input-range=-1e3 (see `memcc compile --help`)")
    assert_user_error(memcc_cli("device", "iv", "vteam", "-o", "x.png", "--duration", "-1e-3"),
                      "attached: --duration=-1e-3 (see `memcc device iv --help`)")
    # A plain negative number parses; no hint for other errors.
    proc = memcc_cli("compile", mlp_file, "--seed", "-1", "--frobnicate")
    assert_user_error(proc, "unrecognized arguments: --frobnicate")
    assert "attached" not in proc.stderr


# ---------------------------------------------------------------------------- compile errors (no compiler needed)


@pytest.mark.parametrize(
    "content, fragment",
    [
        (None, "no such file"),
        (b"", "empty"),
        (b"just some text\n", "not an ONNX model"),
        (bytes(np.random.default_rng(3).integers(0, 256, 2048, dtype=np.uint8)), "not an ONNX model"),
    ],
    ids=["missing", "empty", "text", "random"],
)
def test_compile_bad_input_file(tmp_path, content, fragment):
    src = tmp_path / "in.onnx"
    if content is not None:
        src.write_bytes(content)
    before = files(tmp_path)
    out = tmp_path / "out.onnx"
    assert_user_error(memcc_cli("compile", src, "-o", out), fragment)
    assert files(tmp_path) == before


def test_compile_directory_input(tmp_path):
    assert_user_error(memcc_cli("compile", tmp_path, "-o", tmp_path / "o.onnx"), "directory")
    assert files(tmp_path) == []


def test_compile_invalid_graph(tmp_path):
    m = mlp_model()
    m.graph.node[1].input[0] = "dangling"
    src = tmp_path / "in.onnx"
    onnx.save(m, str(src))
    assert_user_error(memcc_cli("compile", src, "-o", tmp_path / "out.onnx"), "not a valid ONNX graph")
    assert files(tmp_path) == ["in.onnx"]


def test_compile_refuses_to_overwrite_input(mlp_file):
    before = mlp_file.read_bytes()
    assert_user_error(memcc_cli("compile", mlp_file, "-o", mlp_file), "overwrite the input")
    assert mlp_file.read_bytes() == before


@pytest.mark.parametrize(
    "flags, fragment",
    [
        (["--tile", "12y"], "tile"),
        (["--dac-bits", "1"], "dac_bits"),
        (["--adc-bits", "x"], "adc_bits"),
        (["--adc-overflow-rate", "1.5"], "adc_overflow_rate"),
        (["--scheme", "triple"], "scheme"),
        (["--max-input-voltage", "-1"], "max_input_voltage"),
        (["--r-on", "1e6", "--r-off", "1e3"], "r_on"),
        (["--seed", "-3"], "seed"),
    ],
)
def test_compile_bad_flags(tmp_path, mlp_file, flags, fragment):
    out = tmp_path / "out.onnx"
    assert_user_error(memcc_cli("compile", mlp_file, "-o", out, *flags), fragment)
    assert not out.exists()


def test_compile_bad_config(tmp_path, mlp_file):
    conf = tmp_path / "memcc.toml"
    conf.write_text('tile = "64x64"\ncolour = "blue"\n')
    out = tmp_path / "out.onnx"
    assert_user_error(memcc_cli("compile", mlp_file, "-o", out, "--config", conf), "colour")
    assert not out.exists()
    assert_user_error(memcc_cli("compile", mlp_file, "-o", out, "--config", tmp_path / "none.toml"), "no such file")
    assert not out.exists()


def test_compile_report_cannot_be_directory(tmp_path, mlp_file):
    out = tmp_path / "out.onnx"
    assert_user_error(memcc_cli("compile", mlp_file, "-o", out, "--report", tmp_path), "report")
    assert not out.exists()


# ---------------------------------------------------------------------------- compile (needs the compiler)


def test_compile_default_output_and_summary(tmp_path, mlp_file):
    proc = memcc_cli("compile", mlp_file, "--device", "ideal")
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "mlp.mem.onnx"
    assert out.is_file()
    assert "mapped 2 layers" in proc.stdout
    assert "fc1" in proc.stdout and "fc2" in proc.stdout
    m = onnx.load(str(out))
    assert sum(n.op_type == "MemristiveMatMul" for n in m.graph.node) == 2


def test_compile_with_config_flags_and_report(tmp_path, mlp_file):
    conf = tmp_path / "memcc.toml"
    conf.write_text('tile = "8x8"\ndac_bits = 6\nadc_bits = 6\n')
    out = tmp_path / "o" / "mlp_tiled.onnx"
    report = tmp_path / "report.json"
    proc = memcc_cli("compile", mlp_file, "-o", out, "--config", conf, "--adc-bits", "8", "--report", report, "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    data = json.loads(report.read_text())
    assert data["settings"]["tile"] == [8, 8]
    assert data["settings"]["dac_bits"] == 6 and data["settings"]["adc_bits"] == 8  # flag over file
    assert len(data["mapped"]) == 2
    node = next(n for n in onnx.load(str(out)).graph.node if n.op_type == "MemristiveMatMul")
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    assert list(attrs["tile_shape"]) == [8, 8] and attrs["adc_bits"] == 8 and attrs["dac_bits"] == 6


def test_compile_nothing_to_map(tmp_path):
    src = tmp_path / "relu.onnx"
    onnx.save(no_weights_model(), str(src))
    out = tmp_path / "out.onnx"
    assert_user_error(memcc_cli("compile", src, "-o", out))
    assert files(tmp_path) == ["relu.onnx"]


def test_compile_unknown_device(tmp_path, mlp_file):
    out = tmp_path / "out.onnx"
    assert_user_error(memcc_cli("compile", mlp_file, "-o", out, "--device", "no-such-device"), "no-such-device")
    assert not out.exists()


# ---------------------------------------------------------------------------- info


def test_info_table(mem_file):
    proc = memcc_cli("info", mem_file)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "conv1" in out and "fc1" in out
    conv_line = next(line for line in out.splitlines() if line.startswith("conv1"))
    assert "9x8" in conv_line and "double" in conv_line and "3x3" in conv_line  # 3 row tiles x 3 col tiles
    fc_line = next(line for line in out.splitlines() if line.startswith("fc1"))
    assert "128x10" in fc_line and "single" in fc_line and "2x1" in fc_line
    assert "head_digital (MatMul)" in out
    assert "total: 2 memristive layers" in out


def test_info_json_counts(mem_file):
    proc = memcc_cli("info", mem_file, "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    conv, fc = data["layers"]
    assert (conv["kind"], conv["K"], conv["N"], conv["tiles"], conv["crossbars"]) == ("conv", 9, 8, 9, 18)
    assert conv["devices"] == 2 * 9 * 8 and conv["dac_bits"] == 8 and conv["adc_bits"] == 6
    assert (fc["kind"], fc["scheme"], fc["tiles"], fc["crossbars"]) == ("matmul", "single", 2, 2)
    assert fc["devices"] == 128 * 10 + 128  # plus the reference column
    assert data["totals"]["devices"] == conv["devices"] + fc["devices"]
    assert data["digital_mappable"] == [{"name": "head_digital", "op_type": "MatMul"}]


def test_info_errors(tmp_path):
    assert_user_error(memcc_cli("info", tmp_path / "nope.onnx"), "no such file")
    bad = tmp_path / "bad.onnx"
    bad.write_text("not a model")
    assert_user_error(memcc_cli("info", bad), "not an ONNX model")


# ---------------------------------------------------------------------------- run


def test_run_errors_without_library(tmp_path, mem_file):
    x = tmp_path / "x.npy"
    np.save(x, np.ones((2, 1, 4, 4), np.float32))
    out = tmp_path / "y.npy"
    assert_user_error(memcc_cli("run", tmp_path / "nope.onnx", "--input", x, "-o", out), "no such file")
    assert_user_error(memcc_cli("run", mem_file, "--input", tmp_path / "missing.npy", "-o", out), "missing.npy")
    bad = tmp_path / "bad.npy"
    bad.write_text("garbage")
    assert_user_error(memcc_cli("run", mem_file, "--input", bad, "-o", out), "bad.npy")
    assert_user_error(memcc_cli("run", mem_file, "--input", x, "-o", tmp_path / "y.txt"), ".npy or .npz")
    assert not out.exists()


@needs_library
def test_run_outputs(tmp_path, mem_file):
    x = np.random.default_rng(0).standard_normal((2, 1, 4, 4)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "y.npy"
    proc = memcc_cli("run", mem_file, "--input", tmp_path / "x.npy", "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert "y: float32 [2, 3]" in proc.stdout
    assert np.load(out).shape == (2, 3)
    # named input, several outputs to .npz would need a multi-output model; named form works too
    proc = memcc_cli("run", mem_file, "--input", f"x={tmp_path / 'x.npy'}", "-o", tmp_path / "y.npz")
    assert proc.returncode == 0, proc.stderr
    with np.load(tmp_path / "y.npz") as z:
        np.testing.assert_allclose(z["y"], np.load(out), rtol=1e-6)


@needs_library
def test_run_input_mismatch(tmp_path, mem_file):
    np.save(tmp_path / "x.npy", np.ones((2, 5), np.float32))
    out = tmp_path / "y.npy"
    assert_user_error(memcc_cli("run", mem_file, "--input", tmp_path / "x.npy", "-o", out), "rank")
    assert_user_error(memcc_cli("run", mem_file, "--input", f"z={tmp_path / 'x.npy'}", "-o", out), "'z'")
    assert_user_error(memcc_cli("run", mem_file, "-o", out), "no value for model input")
    assert not out.exists()


@needs_library
def test_compile_then_run_matches_original(tmp_path, mlp_file):
    out = tmp_path / "mlp.mem.onnx"
    assert memcc_cli("compile", mlp_file, "-o", out, "-q").returncode == 0
    x = np.random.default_rng(1).standard_normal((5, 16)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    proc = memcc_cli("run", out, "-i", tmp_path / "x.npy", "-o", tmp_path / "y.npy")
    assert proc.returncode == 0, proc.stderr
    import onnxruntime as ort

    ref = ort.InferenceSession(str(mlp_file), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), ref, rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------------------- output paths


def test_device_without_action_points_to_its_help():
    assert_user_error(memcc_cli("device"), "ACTION", "`memcc device --help`")


@pytest.mark.parametrize("name", ["report.png", "report.PDF", "model.onnx", "results.csv"])
def test_compile_report_refuses_plot_or_model_names(tmp_path, mlp_file, name):
    out = tmp_path / "out.onnx"
    proc = memcc_cli("compile", mlp_file, "-o", out, "--report", tmp_path / name)
    assert_user_error(proc, ".json", "written as JSON")
    assert "collide" not in proc.stderr
    assert files(tmp_path) == ["mlp.onnx"]


def test_compile_report_other_names_are_json(tmp_path, mlp_file):
    out = tmp_path / "out.onnx"
    proc = memcc_cli("compile", mlp_file, "-o", out, "--report", tmp_path / "report", "-q")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "report").read_text())["mapped"]


def test_compile_model_to_stdout_pipe(tmp_path, mlp_file):
    proc = memcc_cli("compile", mlp_file, "-o", "/dev/stdout", binary=True)
    assert proc.returncode == 0, proc.stderr
    model = onnx.load_from_string(proc.stdout)  # the model's bytes and nothing after them
    assert model.graph.node[0].op_type == "MemristiveMatMul"
    err = proc.stderr.decode()
    assert "mapped 2 layers" in err
    assert f"wrote /dev/stdout ({len(proc.stdout) / 1024:.1f} KB)" in err, err
    assert files(tmp_path) == ["mlp.onnx"]


def test_compile_report_to_stdout_pipe_and_fifo(tmp_path, mlp_file):
    out = tmp_path / "out.onnx"
    # vteam: programmed devices, so a regular report would get a plot next to it.
    proc = memcc_cli("compile", mlp_file, "-o", out, "--device", "vteam", "--report", "/dev/stdout")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["programming"]["device"] == "vteam"
    assert "mapped 2 layers" in proc.stderr and "wrote /dev/stdout" in proc.stderr
    assert files(tmp_path) == ["mlp.onnx", "out.onnx"] and not os.path.lexists("/dev/stdout.png")

    fifo = tmp_path / "report.fifo"
    os.mkfifo(fifo)
    reader = fifo_reader(fifo)
    proc = memcc_cli("compile", mlp_file, "-o", out, "--device", "vteam", "--report", fifo)
    reader.join(30)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(reader.box["data"])["programming"]["device"] == "vteam"
    assert proc.stdout == "" and "mapped 2 layers" in proc.stderr
    assert files(tmp_path) == ["mlp.onnx", "out.onnx", "report.fifo"]


def test_compile_writes_through_symlink_and_fifo(tmp_path, mlp_file):
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "t.onnx"
    target.write_bytes(b"old")
    link = tmp_path / "link.onnx"
    link.symlink_to(target)
    proc = memcc_cli("compile", mlp_file, "-o", link, "-q", "--report", tmp_path / "new" / "r.json")
    assert proc.returncode == 0, proc.stderr
    assert link.is_symlink() and onnx.load(str(target)).graph.node[0].op_type == "MemristiveMatMul"
    assert json.loads((tmp_path / "new" / "r.json").read_text())["mapped"]

    fifo = tmp_path / "pipe.onnx"
    os.mkfifo(fifo)
    reader = fifo_reader(fifo)
    proc = memcc_cli("compile", mlp_file, "-o", fifo, "-q")
    reader.join(30)
    assert proc.returncode == 0, proc.stderr
    assert fifo.is_fifo() and reader.box["data"] == target.read_bytes()


def two_output_model() -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Neg", ["x"], ["b"])],
        "two",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, ["batch", 4]),
         helper.make_tensor_value_info("b", TensorProto.FLOAT, ["batch", 4])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_run_npy_for_several_outputs_refused_before_running(tmp_path):
    src = tmp_path / "two.onnx"
    onnx.save(two_output_model(), str(src))
    # No input given: the refusal must come from the output check, before inputs or inference.
    assert_user_error(memcc_cli("run", src, "-o", tmp_path / "y.npy"), "2 outputs", ".npz")
    assert files(tmp_path) == ["two.onnx"]


@needs_library
def test_run_creates_output_folder(tmp_path, mem_file):
    np.save(tmp_path / "x.npy", np.ones((2, 1, 4, 4), np.float32))
    out = tmp_path / "new" / "sub" / "y.npy"
    proc = memcc_cli("run", mem_file, "-i", tmp_path / "x.npy", "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert np.load(out).shape == (2, 3)
    # A failed run creates nothing.
    np.save(tmp_path / "bad.npy", np.ones((2, 5), np.float32))
    assert_user_error(memcc_cli("run", mem_file, "-i", tmp_path / "bad.npy", "-o", tmp_path / "n2" / "y.npy"), "rank")
    assert not (tmp_path / "n2").exists()


@needs_library
def test_run_writes_through_char_device(tmp_path, mem_file):
    import stat

    if os.geteuid() != 0:
        pytest.skip("creating a device node needs root")
    dev = tmp_path / "null.npy"
    try:
        os.mknod(dev, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except OSError as exc:
        pytest.skip(f"mknod failed: {exc}")
    np.save(tmp_path / "x.npy", np.ones((2, 1, 4, 4), np.float32))
    proc = memcc_cli("run", mem_file, "-i", tmp_path / "x.npy", "-o", dev)
    assert proc.returncode == 0, proc.stderr
    assert dev.is_char_device() and files(tmp_path) == ["mem.onnx", "null.npy", "x.npy"]


@needs_library
def test_run_arrays_to_stdout_pipe(tmp_path, mem_file):
    import io

    x = np.ones((2, 1, 4, 4), np.float32)
    np.save(tmp_path / "x.npy", x)
    proc = memcc_cli("run", mem_file, "-i", tmp_path / "x.npy", "-o", "/dev/stdout", binary=True)
    assert proc.returncode == 0, proc.stderr
    # No .npy/.npz name to go by: one output is written as .npy.
    y = np.load(io.BytesIO(proc.stdout), allow_pickle=False)
    assert y.shape == (2, 3)
    assert "y: float32 [2, 3]" in proc.stderr.decode() and "wrote /dev/stdout" in proc.stderr.decode()


@needs_library
def test_run_feeds_drift_time(tmp_path, mlp_file):
    from memcc import runtime

    model = tmp_path / "drift.onnx"
    proc = memcc_cli("compile", mlp_file, "-o", model, "-q", "--nonideality", "drift:nu=0.05")
    assert proc.returncode == 0, proc.stderr
    x = np.random.default_rng(2).standard_normal((3, 16)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    outs = {}
    for t in (1.0, 1e7):
        np.save(tmp_path / "t.npy", np.array(t, np.float32))
        y = tmp_path / f"y{t:g}.npy"
        # The unnamed file still goes to the one required input.
        proc = memcc_cli("run", model, "-i", tmp_path / "x.npy", "-i", f"memcc_time_s={tmp_path / 't.npy'}", "-o", y)
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr == ""  # no onnxruntime warning about the overridable initializer
        outs[t] = np.load(y)
        ref = runtime.run(str(model), {"x": x, "memcc_time_s": np.array(t, np.float32)})[0]
        np.testing.assert_allclose(outs[t], ref, rtol=1e-5, atol=1e-6)
    assert not np.allclose(outs[1.0], outs[1e7])
    # By .npz key, and left out (the default time).
    np.savez(tmp_path / "in.npz", x=x, memcc_time_s=np.array(1e7, np.float32))
    assert memcc_cli("run", model, "-i", tmp_path / "in.npz", "-o", tmp_path / "z.npy").returncode == 0
    np.testing.assert_allclose(np.load(tmp_path / "z.npy"), outs[1e7], rtol=1e-6)
    assert memcc_cli("run", model, "-i", tmp_path / "x.npy", "-o", tmp_path / "d.npy").returncode == 0
    np.testing.assert_allclose(np.load(tmp_path / "d.npy"), runtime.run(str(model), {"x": x})[0], rtol=1e-5, atol=1e-6)
    assert_user_error(memcc_cli("run", model, "-i", f"t={tmp_path / 't.npy'}"), "its inputs are: x; optional: memcc_time_s")
    assert_user_error(memcc_cli("run", model, "-i", tmp_path / "x.npy", "-i", tmp_path / "t.npy"), "memcc_time_s=FILE.npy")
