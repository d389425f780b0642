"""`memcc sweep` and `memcc.datasets`: grid parsing, data loaders, CSV, determinism, parallelism, plot."""

from __future__ import annotations

import csv
import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import library_available
from memcc import datasets, sweep
from memcc.errors import ConfigError, MemccError

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
DIGITS_CNN = EXAMPLES / "digits_cnn.onnx"

needs_library = pytest.mark.skipif(not library_available(), reason="libmemcc_ops is not built/installed")


def one_line(exc) -> str:
    text = str(exc.value if hasattr(exc, "value") else exc)
    assert "\n" not in text
    return text


# --------------------------------------------------------------------------------------------
# Grid and keys
# --------------------------------------------------------------------------------------------


def test_parse_vary_values_and_aliases():
    key, values = sweep.parse_vary("d2d-std=0, 0.1,0.3")
    assert key.name == "d2d-std" and values == [0.0, 0.1, 0.3]
    assert sweep.parse_vary("d2d_std=0.2")[0].name == "d2d-std"
    assert sweep.parse_vary("n-states=2,16")[1] == [2, 16]
    assert sweep.parse_vary("states=4")[0].name == "n-states"
    assert sweep.parse_vary("tile=128x128,none,64")[1] == [(128, 128), (0, 0), (64, 64)]
    assert sweep.parse_vary("adc-bits=0,8")[1] == [0, 8]
    assert sweep.parse_vary("programming=naive,ideal")[1] == ["naive", "ideal"]
    assert sweep.parse_vary("ratio=1.5,100")[1] == [1.5, 100.0]


def test_grid_is_the_product_in_order():
    grid = sweep.parse_grid(["d2d-std=0,0.1", "n-states=4,8,16"])
    assert list(grid) == ["d2d-std", "n-states"]
    assert sweep.parse_grid({"ratio": [2, 20]}) == {"ratio": [2.0, 20.0]}


@pytest.mark.parametrize(
    "spec, words",
    [
        ("d2d-sdt=0.1", "did you mean 'd2d-std'"),
        ("voltage=1", "unknown setting 'voltage'"),
        ("d2d-std", "expected KEY=V1,V2"),
        ("d2d-std=", "comma-separated list"),
        ("d2d-std=0,,0.1", "comma-separated list"),
        ("d2d-std=-0.1", "must be >= 0"),
        ("d2d-std=abc", "not a number"),
        ("d2d-std=0.1,0.1", "given twice"),
        ("n-states=1", "must be >= 2"),
        ("n-states=2.5", "not an integer"),
        ("ratio=1", "must be > 1"),
        ("r-off=0", "must be > 0"),
        ("tile=12y4", "tile"),
        ("adc-bits=30", "between 2 and 24"),
        ("programming=fast", "naive or ideal"),
        ("d2d-std=nan", "not finite"),
    ],
)
def test_bad_vary_specs_are_one_line_errors(spec, words):
    with pytest.raises(ConfigError) as exc:
        sweep.parse_grid([spec])
    assert words in one_line(exc)


def test_bad_grids():
    with pytest.raises(ConfigError, match="given twice"):
        sweep.parse_grid(["d2d-std=0", "d2d_std=0.1"])
    with pytest.raises(ConfigError, match="both set R_off"):
        sweep.parse_grid(["ratio=2", "r-off=1000"])
    with pytest.raises(ConfigError, match="nothing to sweep"):
        sweep.parse_grid([])


def test_seeds():
    assert sweep.parse_seeds() == [0, 1, 2]
    assert sweep.parse_seeds(2) == [0, 1]
    assert sweep.parse_seeds(seed_list="3, 1,7") == [3, 1, 7]
    for kwargs, words in [({"seeds": 0}, "positive"), ({"seed_list": "1,x"}, "not an integer"),
                          ({"seed_list": "1,1"}, "twice"), ({"seed_list": "-1"}, ">= 0"),
                          ({"seeds": 2, "seed_list": "1"}, "not both")]:
        with pytest.raises(ConfigError, match=words):
            sweep.parse_seeds(**kwargs)


def test_point_settings_n_states_and_ratio():
    base = sweep.resolve_fixed({"device": "vteam", "nonidealities": ["faults:stuck_lrs=0.01"]})
    s = sweep.point_settings(base, {"n-states": 8, "d2d-std": 0.2}, seed=5)
    assert s["seed"] == 5 and s["d2d_std"] == 0.2 and s["device"] == "vteam"
    assert [n["name"] for n in s["nonidealities"]] == ["finite_states", "faults"]
    assert s["nonidealities"][0]["n_states"] == 8

    s = sweep.point_settings(sweep.resolve_fixed({"device": "vteam"}), {"ratio": 20}, seed=0)
    r_on, r_off = s["device_params"]["r_on"], s["device_params"]["r_off"]
    assert (r_on.mean, r_off.mean) == (50.0, 1000.0)  # VTEAM's r_on 50 ohm
    assert r_off.std == pytest.approx(100.0) and r_off.min == pytest.approx(700.0)  # d2d 10 %, ±3 std
    # A small ratio narrows the clip so that every device keeps r_on < r_off.
    s = sweep.point_settings(sweep.resolve_fixed({"device": "vteam"}), {"ratio": 1.5}, seed=0)
    r_on, r_off = s["device_params"]["r_on"], s["device_params"]["r_off"]
    assert r_off.mean == 75.0 and r_on.max < r_off.min
    # Without spread r_off is a plain number.
    s = sweep.point_settings(sweep.resolve_fixed({"device": "vteam", "d2d_std": 0}), {"ratio": 5}, seed=0)
    assert s["device_params"]["r_off"] == 250.0
    # The ideal device: r_on 1 kohm.
    s = sweep.point_settings(sweep.resolve_fixed({}), {"ratio": 10}, seed=0)
    assert s["device_params"]["r_off"] == 10_000.0


def test_fixed_and_varied_conflicts():
    cnn = DIGITS_CNN
    for vary, fixed, words in [
        (["ratio=2"], {"r_off": 1000}, "both set r_off"),
        (["d2d-std=0,0.1"], {"d2d-std": 0.1}, "both set d2d_std"),
        (["n-states=4"], {"nonidealities": ["finite_states:n=8"]}, "finite_states"),
        (["ratio=2"], {"device_params": ["r_off=900"]}, "device parameter r_off"),
        (["d2d-std=0"], {"seed": 1}, "--seeds"),
    ]:
        with pytest.raises(ConfigError, match=words):
            sweep.run_sweep(cnn, "digits", vary, seeds=1, fixed=fixed, jobs=1)


# --------------------------------------------------------------------------------------------
# Data sets
# --------------------------------------------------------------------------------------------


def write_idx(path: Path, array: np.ndarray, gz: bool = True) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if gz:
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


@pytest.fixture
def tiny_fmnist(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "fm"
    folder.mkdir()
    for split, n in (("train", 7), ("t10k", 5)):
        write_idx(folder / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        write_idx(folder / f"{split}-labels-idx1-ubyte.gz", rng.integers(0, 10, n))
    return folder


def test_fmnist_loader_on_synthetic_idx(tiny_fmnist):
    raw = datasets.read_idx(tiny_fmnist / "t10k-images-idx3-ubyte.gz")
    ds = datasets.load_dataset(f"fmnist:{tiny_fmnist}")
    assert ds.x.shape == (5, 28, 28) and ds.x.dtype == np.float32 and ds.y.dtype == np.int64
    np.testing.assert_array_equal(ds.x, raw.astype(np.float32) / 255)
    assert datasets.load_dataset(f"fmnist:{tiny_fmnist}", split="train").x.shape == (7, 28, 28)
    assert len(datasets.load_dataset(f"fmnist:{tiny_fmnist}", limit=3)) == 3
    # Layouts: NCHW for a CNN, flat for an MLP.
    assert datasets.adapt_to_shape(ds.x, [None, 1, 28, 28]).shape == (5, 1, 28, 28)
    assert datasets.adapt_to_shape(ds.x, [None, 28, 28, 1]).shape == (5, 28, 28, 1)
    assert datasets.adapt_to_shape(ds.x, [None, 784]).shape == (5, 784)
    with pytest.raises(ConfigError, match="do not fit"):
        datasets.adapt_to_shape(ds.x, [None, 1, 8, 8])


def test_idx_errors(tmp_path, tiny_fmnist):
    bad = tmp_path / "bad.gz"
    with gzip.open(bad, "wb") as f:
        f.write(b"\x01\x02\x03\x04rest")
    with pytest.raises(MemccError, match="bad magic"):
        datasets.read_idx(bad)
    short = tmp_path / "short"
    write_idx(short, np.zeros((3, 4), np.uint8), gz=False)
    short.write_bytes(short.read_bytes()[:-2])
    with pytest.raises(MemccError, match="needs 12"):
        datasets.read_idx(short)
    (tiny_fmnist / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(MemccError, match="not found"):
        datasets.load_dataset(f"fmnist:{tiny_fmnist}")


def test_fmnist_missing_names_the_debian_package(monkeypatch, tmp_path):
    monkeypatch.setattr(datasets, "FMNIST_DIR", tmp_path / "nowhere")
    with pytest.raises(MemccError) as exc:
        datasets.load_dataset("fmnist")
    assert "apt-get install dataset-fashion-mnist" in one_line(exc)


@pytest.mark.skipif(not (datasets.FMNIST_DIR / "t10k-labels-idx1-ubyte.gz").is_file(),
                    reason="Debian's dataset-fashion-mnist is not installed")
def test_real_fmnist_test_split():
    ds = datasets.load_dataset("fmnist")
    assert ds.x.shape == (10_000, 28, 28) and 0 <= ds.x.min() and ds.x.max() <= 1
    assert np.bincount(ds.y).tolist() == [1000] * 10


def test_digits_split_is_the_examples_split():
    ds = datasets.load_dataset("digits")
    ref = np.load(EXAMPLES / "digits_test.npz")
    np.testing.assert_array_equal(ds.y, ref["y"])
    np.testing.assert_allclose(ds.x[:, None], ref["x"])
    assert datasets.load_dataset("digits", split="train").x.shape == (1437, 8, 8)


def test_npz_and_spec_errors(tmp_path):
    p = tmp_path / "d.npz"
    np.savez(p, x=np.ones((4, 64), np.float32), y=np.arange(4))
    ds = datasets.load_dataset(f"npz:{p}")
    assert ds.x.shape == (4, 64) and ds.y.tolist() == [0, 1, 2, 3]
    np.savez(tmp_path / "e.npz", inputs=np.ones((2, 3)))
    with pytest.raises(MemccError, match="no array 'x'"):
        datasets.load_dataset(f"npz:{tmp_path / 'e.npz'}")
    with pytest.raises(MemccError, match="no such file"):
        datasets.load_dataset(f"npz:{tmp_path / 'missing.npz'}")
    with pytest.raises(ConfigError, match="did you mean 'digits'"):
        datasets.load_dataset("digit")
    with pytest.raises(ConfigError, match="split"):
        datasets.load_dataset("digits", split="valid")
    with pytest.raises(ConfigError, match="positive"):
        datasets.load_dataset("digits", limit=0)


def test_choose_output_prefers_float_scores():
    label = helper.make_tensor_value_info("label", TensorProto.INT64, [None])
    probs = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 3])
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])
    nodes = [helper.make_node("Identity", ["x"], ["probabilities"]),
             helper.make_node("ArgMax", ["x"], ["label"], axis=1, keepdims=0)]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [label, probs]))
    assert sweep.choose_output(model) == (1, "probabilities", True)
    assert sweep.choose_output(model, "label") == (0, "label", False)
    with pytest.raises(ConfigError, match="no output 'logits'"):
        sweep.choose_output(model, "logits")


# --------------------------------------------------------------------------------------------
# Running sweeps (the C++ op library)
# --------------------------------------------------------------------------------------------


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@needs_library
def test_sweep_csv_plot_and_determinism(tmp_path):
    vary = ["d2d-std=0,0.3", "n-states=4,16"]
    kw = dict(seeds=[0, 1], fixed={"device": "vteam", "programming": "ideal"}, limit=100, jobs=1)
    a = sweep.run_sweep(DIGITS_CNN, "digits", vary, **kw)
    a.write_csv(tmp_path / "a.csv")
    png = a.plot(tmp_path / "a.png")
    rows = read_csv(tmp_path / "a.csv")
    assert list(rows[0]) == ["model", "d2d_std", "n_states", "seed", "accuracy", "n_samples", "elapsed_s"]
    assert len(rows) == 1 + 2 * 2 * 2
    assert rows[0]["model"] == "digital" and rows[0]["seed"] == "" and float(rows[0]["accuracy"]) > 0.9
    assert [(r["d2d_std"], r["n_states"], r["seed"]) for r in rows[1:4]] == [("0", "4", "0"), ("0", "4", "1"), ("0", "16", "0")]
    assert all(r["n_samples"] == "100" for r in rows)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # 4 states cost accuracy; 16 states with no spread are close to the digital model.
    acc = {(r["d2d_std"], r["n_states"]): float(r["accuracy"]) for r in rows[1:] if r["seed"] == "0"}
    assert acc[("0", "4")] < acc[("0", "16")]
    # Same seeds: the same numbers.
    b = sweep.run_sweep(DIGITS_CNN, "digits", vary, **kw)
    assert [r["accuracy"] for r in a.rows] == [r["accuracy"] for r in b.rows]
    assert a.baseline["accuracy"] == b.baseline["accuracy"]
    assert "d2d_std" in a.summary() and "| digital |" in a.markdown()


@needs_library
def test_parallel_equals_serial(tmp_path):
    kw = dict(seeds=[0, 1], fixed={"device": "vteam"}, limit=120)
    vary = {"ratio": [2, 20]}
    serial = sweep.run_sweep(DIGITS_CNN, "digits", vary, jobs=1, **kw)
    parallel = sweep.run_sweep(DIGITS_CNN, "digits", vary, jobs=2, **kw)
    assert [(r["values"], r["seed"], r["accuracy"]) for r in serial.rows] == \
        [(r["values"], r["seed"], r["accuracy"]) for r in parallel.rows]
    assert serial.baseline["accuracy"] == parallel.baseline["accuracy"]


@needs_library
def test_ratio_at_the_devices_own_window_is_the_default_compile():
    """ratio = 20 is VTEAM's own 50 ohm / 1 kohm window: the same devices as no ratio at all."""
    kw = dict(seeds=[0, 1], fixed={"device": "vteam", "programming": "ideal"}, limit=150, jobs=1)
    a = sweep.run_sweep(DIGITS_CNN, "digits", {"ratio": [20]}, **kw)
    b = sweep.run_sweep(DIGITS_CNN, "digits", {"d2d-std": [0.1]}, **kw)
    assert [r["accuracy"] for r in a.rows] == [r["accuracy"] for r in b.rows]


@needs_library
def test_npz_data_and_flat_model(tmp_path):
    """A Gemm model fed by an npz file; the plot with two varied settings has one line each."""
    rng = np.random.default_rng(1)
    w = rng.normal(size=(64, 10)).astype(np.float32)
    x = rng.random((50, 8, 8)).astype(np.float32)
    y = (x.reshape(50, -1) @ w).argmax(1)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    inp = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 64])
    out = helper.make_tensor_value_info("scores", TensorProto.FLOAT, [None, 10])
    model = helper.make_model(helper.make_graph(
        [helper.make_node("Gemm", ["x", "w"], ["scores"])], "g", [inp], [out],
        [numpy_helper.from_array(w, "w")]), opset_imports=[helper.make_opsetid("", 17)])
    r = sweep.run_sweep(model, f"npz:{tmp_path / 'd.npz'}", ["adc-bits=2,8", "tile=32x32,none"], seeds=1, jobs=1)
    assert r.baseline["accuracy"] == 1.0
    acc = {(v["values"]["adc-bits"], v["values"]["tile"]): v["accuracy"] for v in r.rows}
    assert acc[(8, (0, 0))] >= 0.9 and acc[(2, (0, 0))] <= acc[(8, (0, 0))]
    assert r.plot(tmp_path / "p.png").stat().st_size > 1000


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def sweep_cli(argv, capsys):
    import memcc.cli as cli

    if "sweep" in getattr(cli, "COMMANDS", {}):
        code = cli.main(["sweep", *map(str, argv)])
    else:  # not hooked into memcc.cli yet
        from memcc import cli_sweep

        code = cli_sweep.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    "argv, words",
    [
        ([DIGITS_CNN, "--data", "digits", "--vary", "voltage=1", "-o", "r.csv"], "unknown setting 'voltage'"),
        ([DIGITS_CNN, "--data", "digits", "-o", "r.csv"], "nothing to sweep"),
        ([DIGITS_CNN, "--data", "digits", "--vary", "n-states=1", "-o", "r.csv"], "must be >= 2"),
        ([DIGITS_CNN, "--data", "digits", "--vary", "d2d-std=0", "--seeds", "2", "--seed-list", "1", "-o", "r.csv"], "not allowed with"),
        ([DIGITS_CNN, "--data", "digits", "--vary", "d2d-std=0", "--jobs", "0", "-o", "r.csv"], "positive integer"),
        ([DIGITS_CNN, "--data", "digits", "--vary", "d2d-std=0", "-o", "/dev/null/r.csv"], "is not a directory"),
        ([DIGITS_CNN, "--data", "digits", "--vary", "d2d-std=0", "-o", "r.txt"], ".csv"),
        ([DIGITS_CNN, "--data", "nope", "--vary", "d2d-std=0", "-o", "r.csv"], "unknown data set"),
        (["missing.onnx", "--data", "digits", "--vary", "d2d-std=0", "-o", "r.csv"], "no such file"),
        ([DIGITS_CNN, "--data", "digits", "--vary", "ratio=2", "--r-off", "900", "-o", "r.csv"], "both set r_off"),
        ([DIGITS_CNN, "--data", "digits", "--vary", "d2d-std=0", "--device", "vteam", "--tile", "12y", "-o", "r.csv"], "tile"),
    ],
)
def test_cli_errors_are_one_line(argv, words, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = sweep_cli(argv, capsys)
    assert code == 2
    assert err.startswith("memcc: error: ") and err.count("\n") == 1, err
    assert words in err
    assert not list(tmp_path.iterdir())


@needs_library
def test_cli_writes_csv_and_plot(capsys, tmp_path):
    csv_path = tmp_path / "r.csv"
    code, out, err = sweep_cli([DIGITS_CNN, "--data", "digits", "--limit", "60", "--vary", "d2d-std=0,0.2",
                                "--seed-list", "3,4", "--device", "vteam", "--programming", "ideal",
                                "--tile", "64x64", "--adc-bits", "8", "--jobs", "1", "-q", "-o", csv_path], capsys)
    assert code == 0, err
    rows = read_csv(csv_path)
    assert [r["seed"] for r in rows] == ["", "3", "4", "3", "4"]
    assert (tmp_path / "r.png").is_file()
    assert out == ""
