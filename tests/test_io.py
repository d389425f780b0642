"""memcc.io: loading every kind of bad input, atomic saving, external data."""

from __future__ import annotations

import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import fifo_reader
from memcc import io as mio
from memcc.errors import ConfigError, MemccError, ModelLoadError


def make_mlp(k: int = 8, n: int = 4, seed: int = 0) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    w = numpy_helper.from_array(rng.standard_normal((k, n)).astype(np.float32), "W")
    b = numpy_helper.from_array(rng.standard_normal(n).astype(np.float32), "B")
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["h"], name="fc"),
        helper.make_node("Add", ["h", "B"], ["y"], name="bias"),
    ]
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", n])],
        [w, b],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(make_mlp(), str(path))
    return path


def listing(folder):
    return sorted(p.name for p in folder.iterdir())


# ---------------------------------------------------------------------------- loading


def test_load_valid_path_proto_and_bytes(model_file):
    m = mio.load_model(model_file)
    assert m.graph.node[0].op_type == "MatMul"
    assert mio.load_model(str(model_file)).graph.name == "mlp"
    assert mio.load_model(m) is m
    assert mio.load_model(model_file.read_bytes()).graph.name == "mlp"


def test_missing_file(tmp_path):
    with pytest.raises(ModelLoadError, match="no such file"):
        mio.load_model(tmp_path / "nope.onnx")


def test_directory(tmp_path):
    with pytest.raises(ModelLoadError, match="directory"):
        mio.load_model(tmp_path)


@pytest.mark.parametrize(
    "content",
    [b"", b"hello, this is a text file\nnot a model\n", bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8))],
    ids=["empty", "text", "random"],
)
def test_not_onnx(tmp_path, content):
    path = tmp_path / "bad.onnx"
    path.write_bytes(content)
    with pytest.raises(ModelLoadError, match="not an ONNX model|is empty") as info:
        mio.load_model(path)
    assert "\n" not in str(info.value)
    assert str(path) in str(info.value)


def test_truncated_model(tmp_path, model_file):
    data = model_file.read_bytes()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError):
        mio.load_model(path)


def test_checker_rejects_graph(tmp_path):
    m = make_mlp()
    m.graph.node[0].input[1] = "does_not_exist"  # dangling input
    path = tmp_path / "invalid.onnx"
    onnx.save(m, str(path))
    with pytest.raises(ModelLoadError, match="not a valid ONNX graph") as info:
        mio.load_model(path)
    assert "\n" not in str(info.value)
    with pytest.raises(ModelLoadError, match="not a valid ONNX graph"):
        mio.load_model(m)


def test_bad_argument_type():
    with pytest.raises(ModelLoadError, match="cannot load a model from a int"):
        mio.load_model(42)


def test_external_data_load(tmp_path):
    m = make_mlp(k=64, n=32)
    expected = numpy_helper.to_array(m.graph.initializer[0])
    path = tmp_path / "ext.onnx"
    onnx.save(m, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location="ext.bin", size_threshold=0)
    assert (tmp_path / "ext.bin").exists()
    os.chdir(tmp_path.parent)  # loading must not depend on the working directory
    loaded = mio.load_model(path)
    w = numpy_helper.to_array(loaded.graph.initializer[0])
    np.testing.assert_array_equal(w, expected)


def test_external_data_missing(tmp_path):
    path = tmp_path / "ext.onnx"
    onnx.save(make_mlp(k=64, n=32), str(path), save_as_external_data=True, location="ext.bin", size_threshold=0)
    (tmp_path / "ext.bin").unlink()
    with pytest.raises(ModelLoadError, match="ext.bin"):
        mio.load_model(path)


# ---------------------------------------------------------------------------- saving


def test_save_round_trip(tmp_path):
    m = make_mlp()
    out = mio.save_model(m, tmp_path / "out.onnx")
    assert listing(tmp_path) == ["out.onnx"]
    assert onnx.load(str(out)) == m


def test_save_creates_parent_folders(tmp_path):
    out = tmp_path / "a" / "b" / "out.onnx"
    mio.save_model(make_mlp(), out)
    assert out.is_file()


def test_save_refuses_input(model_file):
    before = model_file.read_bytes()
    with pytest.raises(ConfigError, match="overwrite the input"):
        mio.save_model(make_mlp(seed=3), model_file, input_path=model_file)
    # also through another spelling of the same path
    other = model_file.parent / "." / model_file.name
    with pytest.raises(ConfigError):
        mio.save_model(make_mlp(seed=3), other, input_path=str(model_file))
    assert model_file.read_bytes() == before


def test_save_refuses_directory(tmp_path):
    with pytest.raises(ConfigError, match="directory"):
        mio.save_model(make_mlp(), tmp_path)


def test_save_failure_leaves_nothing(tmp_path, monkeypatch):
    def boom(self):
        raise ValueError("serialization exploded")

    monkeypatch.setattr(onnx.ModelProto, "SerializeToString", boom)
    with pytest.raises(MemccError, match="serialization exploded"):
        mio.save_model(make_mlp(), tmp_path / "sub" / "out.onnx")
    assert listing(tmp_path) == []  # neither the file, a temp file, nor the created folder


def test_save_failure_during_write_keeps_old_file(tmp_path, monkeypatch):
    out = tmp_path / "out.onnx"
    out.write_bytes(b"previous")

    real_replace = os.replace

    def failing_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(mio.os, "replace", failing_replace)
    with pytest.raises(MemccError, match="No space left"):
        mio.save_model(make_mlp(), out)
    monkeypatch.setattr(mio.os, "replace", real_replace)
    assert listing(tmp_path) == ["out.onnx"]
    assert out.read_bytes() == b"previous"


def test_save_interrupted_leaves_nothing(tmp_path, monkeypatch):
    def interrupted(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(mio.os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        mio.save_model(make_mlp(), tmp_path / "out.onnx")
    assert listing(tmp_path) == []


def test_save_large_model_uses_external_data(tmp_path, monkeypatch):
    # Pretend the protobuf limit is tiny, so that a small model takes the > 2 GB path.
    monkeypatch.setattr(mio, "EXTERNAL_DATA_THRESHOLD", 1000)
    m = make_mlp(k=128, n=64)
    before = m.SerializeToString()
    out = mio.save_model(m, tmp_path / "big.onnx")
    assert sorted(listing(tmp_path)) == ["big.onnx", "big.onnx.data"]
    assert m.SerializeToString() == before  # the caller's model is left as it was
    raw = onnx.load(str(out), load_external_data=False)
    assert raw.graph.initializer[0].data_location == TensorProto.EXTERNAL
    loaded = mio.load_model(out)
    for a, b in zip(loaded.graph.initializer, m.graph.initializer):
        np.testing.assert_array_equal(numpy_helper.to_array(a), numpy_helper.to_array(b))


def test_save_large_model_failure_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(mio, "EXTERNAL_DATA_THRESHOLD", 1000)
    m = make_mlp(k=128, n=64)
    before = m.SerializeToString()
    real = onnx.ModelProto.SerializeToString

    def fail_once_external(self, *a, **k):
        # fail the write of the model whose tensors were moved out
        if any(t.data_location == TensorProto.EXTERNAL for t in self.graph.initializer):
            raise ValueError("disk said no")
        return real(self, *a, **k)

    monkeypatch.setattr(onnx.ModelProto, "SerializeToString", fail_once_external)
    with pytest.raises(MemccError, match="disk said no"):
        mio.save_model(m, tmp_path / "big.onnx")
    monkeypatch.setattr(onnx.ModelProto, "SerializeToString", real)
    assert listing(tmp_path) == []
    assert m.SerializeToString() == before


# ---------------------------------------------------------------------------- writing through links, devices, pipes




def _char_device(path):
    """A /dev/null-like character device at `path`, or skip (needs root and a filesystem that
    allows device nodes)."""
    import stat

    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("creating a device node needs root")
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except OSError as exc:
        pytest.skip(f"mknod failed: {exc}")
    return path


def test_save_follows_symlink(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    target = real / "target.onnx"
    target.write_bytes(b"old")
    target.chmod(0o640)
    link = tmp_path / "link.onnx"
    link.symlink_to(os.path.join("real", "target.onnx"))
    m = make_mlp()
    mio.save_model(m, link)
    assert link.is_symlink() and os.readlink(link) == os.path.join("real", "target.onnx")
    assert onnx.load(str(target)) == m
    assert (target.stat().st_mode & 0o777) == 0o640  # an existing file keeps its permissions
    assert listing(tmp_path) == ["link.onnx", "real"] and listing(real) == ["target.onnx"]


def test_save_through_dangling_symlink_creates_target(tmp_path):
    link = tmp_path / "link.onnx"
    link.symlink_to("new.onnx")
    mio.save_model(make_mlp(), link)
    assert link.is_symlink() and (tmp_path / "new.onnx").is_file()
    gone = tmp_path / "gone.onnx"
    gone.symlink_to(os.path.join("nowhere", "x.onnx"))
    with pytest.raises(ConfigError, match="folder does not exist"):
        mio.check_output_path(gone)


def test_symlink_loop_refused(tmp_path):
    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("a")
    with pytest.raises(ConfigError, match="symbolic links"):
        mio.check_output_path(tmp_path / "a")


def test_save_through_fifo(tmp_path):
    fifo = tmp_path / "model.onnx"
    os.mkfifo(fifo)
    reader = fifo_reader(fifo)
    m = make_mlp()
    mio.save_model(m, fifo)
    reader.join(10)
    assert reader.box["data"] == m.SerializeToString()
    assert fifo.is_fifo() and listing(tmp_path) == ["model.onnx"]


def test_atomic_output_through_fifo_copies_on_success(tmp_path):
    fifo = tmp_path / "plot.png"
    os.mkfifo(fifo)
    reader = fifo_reader(fifo)
    with mio.atomic_output(fifo) as tmp:
        assert tmp.parent != tmp_path and tmp.suffix == ".png"  # not next to the pipe
        tmp.write_bytes(b"payload")
    reader.join(10)
    assert reader.box["data"] == b"payload" and not tmp.exists()
    assert fifo.is_fifo() and listing(tmp_path) == ["plot.png"]


def test_save_to_char_device(tmp_path):
    dev = _char_device(tmp_path / "mynull")
    mio.save_model(make_mlp(), dev)
    with mio.atomic_output(dev) as tmp:
        tmp.write_bytes(b"report")
    assert dev.is_char_device() and listing(tmp_path) == ["mynull"]


def test_external_data_model_to_fifo_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(mio, "EXTERNAL_DATA_THRESHOLD", 1000)
    fifo = tmp_path / "big.onnx"
    os.mkfifo(fifo)  # no reader: a refusal must come before opening it
    with pytest.raises(ConfigError, match="external data"):
        mio.save_model(make_mlp(k=128, n=64), fifo)
    assert fifo.is_fifo() and listing(tmp_path) == ["big.onnx"]


def test_socket_refused(tmp_path):
    import socket

    path = tmp_path / "s"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
    except OSError as exc:
        pytest.skip(f"cannot bind a unix socket: {exc}")
    try:
        with pytest.raises(ConfigError, match="socket"):
            mio.check_side_file(path, "report")
        with pytest.raises(ConfigError, match="socket"):
            mio.save_model(make_mlp(), path)
    finally:
        sock.close()


def test_atomic_output_creates_folders_and_removes_them_on_failure(tmp_path):
    out = tmp_path / "a" / "b" / "r.json"
    assert mio.check_side_file(out, "report") == out
    with pytest.raises(RuntimeError):
        with mio.atomic_output(out) as tmp:
            tmp.write_text("{}")
            raise RuntimeError("writer failed")
    assert listing(tmp_path) == []
    with mio.atomic_output(out) as tmp:
        tmp.write_text("{}")
    assert out.read_text() == "{}" and listing(out.parent) == ["r.json"]


def test_side_file_under_a_file_refused(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match="not a directory"):
        mio.check_side_file(tmp_path / "f" / "sub" / "r.json", "report")
