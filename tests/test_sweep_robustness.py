"""`memcc sweep` when things go wrong: unguarded scripts, invalid points, unusual models, SIGTERM,
usage errors, and what it prints."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import library_available
from memcc import datasets, sweep
from memcc.errors import ConfigError

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
DIGITS_CNN = EXAMPLES / "digits_cnn.onnx"

needs_library = pytest.mark.skipif(not library_available(), reason="libmemcc_ops is not built/installed")


def sweep_cli(argv, capsys):
    import memcc.cli as cli

    code = cli.main(["sweep", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def gemm_model(n_in=64, n_out=10, *, batch=None, dtype=TensorProto.FLOAT, seed=1, extra_input=False):
    """x [batch, n_in] → (Cast) → Gemm → scores; the weights of `gemm_data`."""
    w = np.random.default_rng(seed).normal(size=(n_in, n_out)).astype(np.float32)
    inputs = [helper.make_tensor_value_info("x", dtype, [batch, n_in])]
    nodes = []
    x = "x"
    if dtype != TensorProto.FLOAT:
        nodes.append(helper.make_node("Cast", ["x"], ["x32"], to=TensorProto.FLOAT))
        x = "x32"
    if extra_input:
        inputs.append(helper.make_tensor_value_info("mask", TensorProto.FLOAT, [batch, n_out]))
        nodes += [helper.make_node("Gemm", [x, "w"], ["s"]), helper.make_node("Mul", ["s", "mask"], ["scores"])]
    else:
        nodes.append(helper.make_node("Gemm", [x, "w"], ["scores"]))
    out = helper.make_tensor_value_info("scores", TensorProto.FLOAT, [batch, n_out])
    graph = helper.make_graph(nodes, "g", inputs, [out], [numpy_helper.from_array(w, "w")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def gemm_data(tmp_path, n=50, seed=1) -> str:
    """npz data the Gemm model of the same seed classifies perfectly."""
    w = np.random.default_rng(seed).normal(size=(64, 10)).astype(np.float32)
    x = np.random.default_rng(seed + 100).random((n, 8, 8)).astype(np.float32)
    y = (x.reshape(n, -1) @ w).argmax(1)
    path = tmp_path / f"d{n}.npz"
    np.savez(path, x=x, y=y)
    return f"npz:{path}"


# --------------------------------------------------------------------------------------------
# 1. A script without the __main__ guard fails fast
# --------------------------------------------------------------------------------------------

UNGUARDED = textwrap.dedent(f"""
    from memcc.sweep import run_sweep
    run_sweep({str(DIGITS_CNN)!r}, "digits", {{"n-states": [4, 8]}}, seeds=[0], limit=20, jobs=2)
""")


def test_docstring_example_is_guarded():
    doc = sweep.__doc__
    assert 'if __name__ == "__main__":' in doc[: doc.index("result.plot")]


@needs_library
@pytest.mark.parametrize("how", ["file", "stdin"])
def test_unguarded_script_fails_fast_with_advice(tmp_path, how):
    script = tmp_path / "unguarded.py"
    script.write_text(UNGUARDED)
    argv = [sys.executable, str(script)] if how == "file" else [sys.executable, "-"]
    t0 = time.monotonic()
    proc = subprocess.run(argv, input=UNGUARDED if how == "stdin" else None, capture_output=True,
                          text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode != 0
    assert 'if __name__ == "__main__":' in proc.stderr and "jobs=1" in proc.stderr
    assert "WorkersFailedToStart" in proc.stderr.strip().splitlines()[-1]
    assert time.monotonic() - t0 < 60


# --------------------------------------------------------------------------------------------
# 2. Every point is checked before any work
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "flags, words",
    [
        (["--device", "vteam", "--vary", "r-on=10,50,2000"],
         "sweep point r_on=2000: device 'vteam': r_on must be smaller than r_off"),
        (["--vary", "device=ideal,foo"], "sweep point device=foo: unknown device 'foo'"),
        (["--vary", "programming=naive"], "device 'ideal' supports programming 'ideal', not 'naive'"),
        (["--vary", "tolerance=0.1"], "programming 'ideal' sets conductances directly and takes no options"),
        (["--device", "vteam", "--nonideality", "nonlinear", "--vary", "d2d-std=0.1"],
         "nonideality nonlinear: device 'vteam' has a linear I-V"),
        (["--device-param", "bogus=1", "--vary", "d2d-std=0.1"], "device 'ideal' has no parameter 'bogus'"),
        # r_off = ratio · r_on: the conductances are equal in float32 (compile's float32 checks)
        (["--device", "vteam", "--vary", "ratio=2,1.00000001"],
         "sweep point ratio=1.00000001: device 'vteam': r_on = 50 ohm and r_off = 50.0000005 ohm are too close"),
        (["--device", "vteam", "--vary", "ratio=1e40"], "sweep point ratio=1e+40: device 'vteam': r_off: 5e+41 ohm"),
        # states typed in µS: the list's check against the device's window runs before the mapping
        (["--device", "vteam", "--nonideality", "finite_states:states=10,20,50", "--vary", "d2d-std=0,0.1"],
         "sweep point d2d_std=0: nonideality finite_states: 0 of the 3 states lie within the device's"),
    ],
)
def test_invalid_points_fail_before_any_work(flags, words, capsys, tmp_path, monkeypatch):
    def no_work(*args, **kwargs):
        raise AssertionError("the sweep started working before checking its points")

    monkeypatch.setattr(sweep, "_evaluate", no_work)
    monkeypatch.setattr(datasets, "load_dataset", no_work)
    t0 = time.monotonic()
    code, out, err = sweep_cli([DIGITS_CNN, "--data", "digits", *flags, "--seeds", "1", "--jobs", "1",
                                "-o", tmp_path / "c.csv"], capsys)
    assert code == 2, err
    assert err.startswith("memcc: error: ") and err.count("\n") == 1, err
    assert words in err
    assert not (tmp_path / "c.csv").exists() and not (tmp_path / "c.png").exists()
    assert time.monotonic() - t0 < 10


def test_check_point_is_compiles_check_settings():
    base = sweep.resolve_fixed({"device": "vteam"})
    with pytest.raises(ConfigError, match="unknown compile option 'bogus'; known options: adc_bits"):
        sweep.check_point({**sweep.point_settings(base, {"d2d-std": 0.1}, seed=0), "bogus": 1})
    settings = sweep.point_settings(base, {"d2d-std": 0.1}, seed=0)
    settings["nonidealities"] = ["finite_states:states=10,20,50"]
    with pytest.raises(ConfigError, match="0 of the 3 states lie within"):
        sweep.check_point(settings)
    # compile skips the preflight (its passes check with the layers mapped), same pipeline
    from memcc import compiler

    options, device, pipeline = compiler.check_settings(preflight=False, **settings)
    assert device.name == "vteam" and options.d2d_std == 0.1
    assert "finite_states" in [p.name for p in pipeline]


def test_check_point_accepts_valid_settings():
    base = sweep.resolve_fixed({"device": "vteam", "nonidealities": ["read_noise:std=0.05"]})
    sweep.check_point(sweep.point_settings(base, {"ratio": 5, "n-states": 4}, seed=0))
    base = sweep.resolve_fixed({"device": "stanford_pku", "nonidealities": ["nonlinear"]})
    sweep.check_point(sweep.point_settings(base, {"d2d-std": 0.1}, seed=0))


# --------------------------------------------------------------------------------------------
# 3. Unusual models and data
# --------------------------------------------------------------------------------------------


def test_already_compiled_model_is_refused(tmp_path):
    import memcc

    compiled = memcc.compile(gemm_model(), progress=False)
    with pytest.raises(ConfigError, match="already compiled") as exc:
        sweep.run_sweep(compiled, gemm_data(tmp_path), {"n-states": [4]}, seeds=1, jobs=1)
    assert "original model" in str(exc.value)


def test_second_required_input_is_named(tmp_path):
    with pytest.raises(ConfigError, match="2 inputs to feed .*'mask'"):
        sweep.run_sweep(gemm_model(extra_input=True), gemm_data(tmp_path), {"n-states": [4]}, seeds=1, jobs=1)


def test_integer_input_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="input 'x' takes int64"):
        sweep.run_sweep(gemm_model(dtype=TensorProto.INT64), gemm_data(tmp_path), {"n-states": [4]},
                        seeds=1, jobs=1)


def test_empty_data_set(tmp_path, capsys):
    np.savez(tmp_path / "e.npz", x=np.zeros((0, 8, 8), np.float32), y=np.zeros(0, np.int64))
    with pytest.raises(ConfigError, match="holds no samples"):
        sweep.run_sweep(DIGITS_CNN, f"npz:{tmp_path / 'e.npz'}", {"n-states": [4]}, seeds=1, jobs=1)
    code, out, err = sweep_cli([DIGITS_CNN, "--data", f"npz:{tmp_path / 'e.npz'}", "--vary", "n-states=4",
                                "-o", tmp_path / "e.csv"], capsys)
    assert code == 2 and "holds no samples" in err and err.count("\n") == 1


def test_no_input_to_feed_is_one_message():
    model = gemm_model()
    model.graph.initializer.append(numpy_helper.from_array(np.zeros((1, 64), np.float32), "x"))
    with pytest.raises(ConfigError, match="^model 'm' has no graph input to feed the data set into$"):
        sweep.check_model(model, "model 'm'")
    with pytest.raises(ConfigError, match="^the model has no graph input to feed the data set into$"):
        datasets.model_input_shape(model)


def test_check_model_reads_dtype_and_fixed_batch():
    feed = sweep.check_model(gemm_model(batch=1, dtype=TensorProto.DOUBLE))
    assert (feed.name, feed.dtype, feed.batch) == ("x", np.dtype("float64"), 1)
    assert sweep.check_model(gemm_model()).batch is None


@needs_library
def test_model_with_batch_fixed_to_one(tmp_path):
    model = onnx.load(DIGITS_CNN)
    dim = model.graph.input[0].type.tensor_type.shape.dim[0]
    dim.ClearField("dim_param")
    dim.dim_value = 1
    kw = dict(seeds=1, limit=40, jobs=1)
    fixed = sweep.run_sweep(model, "digits", {"n-states": [4, 16]}, **kw)
    free = sweep.run_sweep(DIGITS_CNN, "digits", {"n-states": [4, 16]}, **kw)
    assert [r["accuracy"] for r in fixed.rows] == [r["accuracy"] for r in free.rows]
    assert fixed.baseline == {**free.baseline, "elapsed": fixed.baseline["elapsed"]}
    assert any("fixed to 1" in n for n in fixed.notes) and "note: the model's batch size is fixed to 1" in fixed.summary()
    assert not free.notes


@needs_library
def test_fixed_batch_pads_the_last_run(tmp_path):
    data = gemm_data(tmp_path, n=50)
    fixed = sweep.run_sweep(gemm_model(batch=7), data, {"adc-bits": [8]}, seeds=1, jobs=1)
    free = sweep.run_sweep(gemm_model(), data, {"adc-bits": [8]}, seeds=1, jobs=1)
    assert fixed.baseline["accuracy"] == 1.0 and fixed.baseline["n_samples"] == 50
    assert [r["accuracy"] for r in fixed.rows] == [r["accuracy"] for r in free.rows]


@needs_library
def test_float64_input_is_fed_as_float64(tmp_path):
    r = sweep.run_sweep(gemm_model(dtype=TensorProto.DOUBLE), gemm_data(tmp_path), {"adc-bits": [8]}, seeds=1, jobs=1)
    assert r.baseline["accuracy"] == 1.0 and r.rows[0]["accuracy"] >= 0.9


@needs_library
def test_onnxruntime_errors_are_one_line(tmp_path):
    model = gemm_model()
    shape = numpy_helper.from_array(np.array([7, -1], np.int64), "shape")
    model.graph.initializer.append(shape)
    model.graph.node[0].output[0] = "s"
    model.graph.node.append(helper.make_node("Reshape", ["s", "shape"], ["scores"]))
    with pytest.raises(Exception) as exc:
        sweep.run_sweep(model, gemm_data(tmp_path), {"adc-bits": [8]}, seeds=1, jobs=1)
    assert "sweep point digital baseline: onnxruntime:" in str(exc.value) and "\n" not in str(exc.value)


# --------------------------------------------------------------------------------------------
# 4. SIGTERM
# --------------------------------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    try:
        import psutil

        return [p.pid for p in psutil.Process(pid).children()]
    except ImportError:
        pass
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def _is_worker(pid: int) -> bool:
    """A live (not zombie) process running multiprocessing's spawn_main."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z" and b"spawn_main" in cmdline


@needs_library
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
@pytest.mark.parametrize("group", [False, True], ids=["parent", "process-group"])
def test_sigterm_terminates_the_workers(tmp_path, group):
    # Long enough to be running when the signal comes: 7,200 samples one at a time, 12 points.
    d = np.load(EXAMPLES / "digits_test.npz")
    np.savez(tmp_path / "big.npz", x=np.tile(d["x"], (20, 1, 1, 1)), y=np.tile(d["y"], 20))
    argv = [sys.executable, "-m", "memcc", "sweep", str(DIGITS_CNN), "--data", f"npz:{tmp_path / 'big.npz'}",
            "--vary", "n-states=4,8,16", "--seeds", "4", "--batch-size", "1", "-j", "2", "-o", str(tmp_path / "r.csv")]
    # stderr to a file: orphaned workers would hold a pipe open and hang communicate()
    err_path = tmp_path / "stderr.txt"
    with open(err_path, "w") as err_file:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err_file, start_new_session=group)
    workers: list[int] = []
    survivors: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while len(workers) < 2 and time.monotonic() < deadline and proc.poll() is None:
            workers = [p for p in _children(proc.pid) if _is_worker(p)]
            time.sleep(0.05)
        assert len(workers) == 2, "the sweep's workers did not start"
        # Wait for a finished point: the workers are loaded and busy.
        while "runs," not in err_path.read_text() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert proc.poll() is None, "the sweep ended before the signal"
        if group:  # as `kill -TERM -PGID` or a terminal's job control: the workers get it too
            os.killpg(proc.pid, signal.SIGTERM)
        else:
            proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        deadline = time.monotonic() + 10
        while any(_is_worker(p) for p in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        survivors = [p for p in workers if _is_worker(p)]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for p in workers:  # a failed run leaves no orphans behind either
            if _is_worker(p):
                os.kill(p, signal.SIGKILL)
    err = err_path.read_text()
    assert proc.returncode == 143, err
    assert err.rstrip().endswith("memcc: terminated")
    assert not (tmp_path / "r.csv").exists() and not (tmp_path / "r.png").exists()
    assert not survivors, "worker processes survived SIGTERM"


class _Stop(BaseException):
    pass


@pytest.mark.skipif(not hasattr(signal, "SIGTERM") or os.name != "posix", reason="needs POSIX signals")
def test_broken_pool_after_sigterm_ends_as_the_handler_said():
    # The race: SIGTERM to the process group kills the workers, and the broken pool reaches
    # the main thread although the handler ran. The outcome is the handler's exception.
    def stop(signum, frame):
        raise _Stop()

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        seen: list = []
        with pytest.raises(_Stop):
            with sweep._noting_sigterm(seen):
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)  # the handler interrupts this
        assert len(seen) == 1 and isinstance(seen[0], _Stop)
        assert signal.getsignal(signal.SIGTERM) is stop  # restored
        assert sweep._broken_pool_error(True, seen) is seen[0]
        assert sweep._broken_pool_error(False, seen) is seen[0]
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert "out of memory" in str(sweep._broken_pool_error(True, []))
    assert isinstance(sweep._broken_pool_error(False, []), sweep.WorkersFailedToStart)
    # A handler that returns: the pool's end is still reported as the signal's
    assert "terminated (SIGTERM)" in str(sweep._broken_pool_error(True, [None]))


# --------------------------------------------------------------------------------------------
# 5. Usage errors, summary, progress
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "flags, words",
    [
        (["--seed-list", "-1,2"], "attached: --seed-list=-1,2 (see `memcc sweep --help`)"),
        (["--jobs", "x"], "argument --jobs/-j: expected a positive integer, got 'x' (see `memcc sweep --help`)"),
        (["--bogus"], "unrecognized arguments: --bogus (see `memcc sweep --help`)"),
    ],
)
def test_usage_errors_point_to_sweep_help(flags, words, capsys, tmp_path):
    code, out, err = sweep_cli([DIGITS_CNN, "--data", "digits", "--vary", "n-states=4", *flags,
                                "-o", tmp_path / "r.csv"], capsys)
    assert code == 2 and err.count("\n") == 1 and words in err, err
    assert "`memcc --help`" not in err


def test_seed_list_attached_negative_value_reaches_the_check(capsys, tmp_path):
    code, out, err = sweep_cli([DIGITS_CNN, "--data", "digits", "--vary", "n-states=4", "--seed-list=-1,2",
                                "-o", tmp_path / "r.csv"], capsys)
    assert code == 2 and "seeds must be >= 0" in err


def test_summary_units_and_legend():
    rows = [{"values": {"n-states": 4}, "seed": s, "accuracy": a, "n_samples": 10, "elapsed": 0.1}
            for s, a in ((0, 0.5), (1, 0.7))]
    r = sweep.SweepResult(["n-states"], rows, {"accuracy": 0.9, "n_samples": 10, "elapsed": 0.1})
    head, line = r.summary().splitlines()[:2]
    assert head.split() == ["n_states", "seeds", "mean", "std", "min", "max"]
    assert line.split() == ["4", "2", "60.00%", "10.00%", "50.00%", "70.00%"]
    assert sweep._seeds_text(1) == "crossbar, 1 seed"
    assert sweep._seeds_text(3) == "crossbar, mean ± std over 3 seeds"


@needs_library
def test_progress_lines_when_not_a_terminal_and_counts_agree(capsys, tmp_path):
    code, out, err = sweep_cli([DIGITS_CNN, "--data", "digits", "--limit", "30", "--vary", "n-states=4,8",
                                "--seeds", "1", "--jobs", "1", "--no-plot", "-o", tmp_path / "r.csv"], capsys)
    assert code == 0, err
    lines = err.splitlines()
    assert [ln.split(" runs,")[0] for ln in lines] == ["memcc sweep: 1/3", "memcc sweep: 2/3", "memcc sweep: 3/3"]
    assert "digital baseline" in lines[0] and "n_states=8, seed 0" in lines[2]
    assert "(2 points + digital baseline = 3 runs in " in out
    code, out, err = sweep_cli([DIGITS_CNN, "--data", "digits", "--limit", "30", "--vary", "n-states=4",
                                "--seeds", "1", "--jobs", "1", "--no-plot", "-q", "-o", tmp_path / "q.csv"], capsys)
    assert code == 0 and out == "" and err == ""


@pytest.mark.parametrize("progress, tty, bar, lines", [
    (None, True, True, False), (None, False, False, True), (True, False, True, False), (False, True, False, False),
])
def test_progress_modes(progress, tty, bar, lines, monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: tty)
    report = sweep._Progress(progress, 3, 2)
    try:
        assert (not report.bar.disable, report.lines) == (bar, lines)
    finally:
        report.close()


@needs_library
def test_cli_prints_notes_once(capsys, tmp_path):
    model = tmp_path / "fixed.onnx"
    onnx.save(gemm_model(batch=7), model)
    code, out, err = sweep_cli([model, "--data", gemm_data(tmp_path), "--vary", "adc-bits=8", "--seeds", "1",
                                "--jobs", "1", "--no-plot", "-o", tmp_path / "r.csv"], capsys)
    assert code == 0, err
    assert (out + err).count("batch size is fixed to 7") == 1
    assert "note: the model's batch size is fixed to 7" in out


def test_batch_size_help_mentions_read_noise(capsys):
    import memcc.cli as cli

    with pytest.raises(SystemExit):
        cli.main(["sweep", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "read noise" in out and "--limit" in out
    assert "read noise" in sweep.__doc__.lower() or "read_noise" in sweep.__doc__
