"""Loading and saving ONNX models, with errors a user can act on.

`load_model` accepts a path, raw bytes or a ModelProto and always returns a ModelProto whose
tensors are all in memory (external data is read from the model file's folder). Every way a file
can be unusable -- missing, a folder, not protobuf, not an ONNX graph, a graph the ONNX checker
rejects, missing external data -- is a `ModelLoadError` with a one-line message.

`save_model` writes atomically: the model goes to a temporary file in the destination folder and
is moved into place with `os.replace` only once it is complete, so an interrupted or failed save
leaves neither a partial file nor a temporary one behind. Models too large for one protobuf
message (2 GiB) are written with their tensors in an external data file next to the model.

Outputs are written *through* what the user named: a symlink is followed (the rename happens
next to its target, so the link stays a link), and an existing character device or FIFO
(/dev/null, a pipe) is opened and written, never replaced by a regular file. Block devices and
sockets are refused.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Iterator, Union

import onnx
from onnx import TensorProto

from memcc.errors import ConfigError, MemccError, ModelLoadError

PathLike = Union[str, "os.PathLike[str]"]

#: Serialized size above which `save_model` moves tensors into an external data file. Protobuf
#: cannot serialize a message of 2 GiB or more; the margin leaves room for the graph itself.
EXTERNAL_DATA_THRESHOLD = 2**31 - 2**26

#: Tensors smaller than this stay inside the model file when external data is written.
EXTERNAL_TENSOR_MIN_BYTES = 1024


def _one_line(text: object) -> str:
    """Collapse a (possibly multi-line) message from onnx/protobuf into one readable line."""
    parts = [p.strip() for p in str(text).splitlines() if p.strip()]
    line = " ".join(parts)
    return line if len(line) <= 400 else line[:397] + "..."


PROTOBUF_LIMIT = 2**31


def serialized_size(model: onnx.ModelProto) -> int:
    """The model's serialized size in bytes; at least PROTOBUF_LIMIT when it is too large to
    serialize (protobuf's ByteSize itself raises for messages of 2 GiB or more)."""
    try:
        return model.ByteSize()
    except Exception:  # google.protobuf.message.EncodeError
        return PROTOBUF_LIMIT


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def load_model(path_or_proto: Union[PathLike, bytes, onnx.ModelProto]) -> onnx.ModelProto:
    """Return the model as a ModelProto with all tensor data loaded, or raise ModelLoadError."""
    if isinstance(path_or_proto, onnx.ModelProto):
        _check_proto(path_or_proto, "the model")
        return path_or_proto
    if isinstance(path_or_proto, (bytes, bytearray, memoryview)):
        model = _parse(bytes(path_or_proto), "the model bytes")
        _check_proto(model, "the model bytes")
        return model
    if not isinstance(path_or_proto, (str, os.PathLike)):
        raise ModelLoadError(
            f"cannot load a model from a {type(path_or_proto).__name__}; "
            "pass a file path, bytes or an onnx.ModelProto"
        )
    return _load_path(Path(path_or_proto))


def _parse(data: bytes, what: str) -> onnx.ModelProto:
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception as exc:  # google.protobuf.message.DecodeError and friends
        raise ModelLoadError(
            f"{what} is not an ONNX model (corrupt or not a protobuf file: {_one_line(exc)})"
        ) from None
    _require_graph(model, what)
    return model


def _require_graph(model: onnx.ModelProto, what: str) -> None:
    # Protobuf parsing is lenient: an empty file, or bytes that happen to decode, give a message
    # with no graph. Such a thing is not an ONNX model, whatever the parser says.
    if not model.HasField("graph") or model.ir_version <= 0:
        raise ModelLoadError(f"{what} is not an ONNX model (no ir_version or no graph in it)")


def _check_proto(model: onnx.ModelProto, what: str) -> None:
    _require_graph(model, what)
    if serialized_size(model) >= PROTOBUF_LIMIT:
        # The in-memory checker serializes the model and would fail on the size alone; such a
        # model was either checked when loaded from its file or built in memory by the caller.
        return
    try:
        onnx.checker.check_model(model)
    except Exception as exc:
        raise ModelLoadError(f"{what} is not a valid ONNX graph: {_one_line(exc)}") from None


def _load_path(path: Path) -> onnx.ModelProto:
    shown = str(path)
    if not path.exists():
        raise ModelLoadError(f"{shown}: no such file")
    if path.is_dir():
        raise ModelLoadError(f"{shown}: is a directory, not an ONNX model file")
    if not path.is_file():
        raise ModelLoadError(f"{shown}: not a regular file")
    if path.stat().st_size == 0:
        raise ModelLoadError(f"{shown}: is empty, not an ONNX model")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ModelLoadError(f"{shown}: cannot read: {exc.strerror or exc}") from None
    model = _parse(data, shown)
    del data

    # The checker is given the path: it reads the file itself and so also handles models whose
    # weights live in external data files (> 2 GiB in all), which it could not take in memory.
    try:
        onnx.checker.check_model(str(path))
    except Exception as exc:
        raise ModelLoadError(f"{shown}: not a valid ONNX graph: {_one_line(exc)}") from None

    if _has_external_data(model):
        base_dir = str(path.resolve().parent)
        for tensor in _external_tensors(model):
            location = _external_location(tensor)
            if not location:
                raise ModelLoadError(
                    f"{shown}: tensor {tensor.name!r} is marked external but names no data file"
                )
            if not (Path(base_dir) / location).is_file():
                raise ModelLoadError(
                    f"{shown}: external data file {location!r} (tensor {tensor.name!r}) "
                    f"not found in {base_dir}"
                )
        try:
            onnx.external_data_helper.load_external_data_for_model(model, base_dir)
        except Exception as exc:
            raise ModelLoadError(
                f"{shown}: cannot read its external data: {_one_line(exc)}"
            ) from None
    return model


# --------------------------------------------------------------------------------------------
# Tensor traversal (initializers, Constant attributes, sub-graphs)
# --------------------------------------------------------------------------------------------


def _graph_tensors(graph: onnx.GraphProto) -> Iterator[TensorProto]:
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("sparse_tensor"):
                yield attr.sparse_tensor.values
                yield attr.sparse_tensor.indices
            for sp in attr.sparse_tensors:
                yield sp.values
                yield sp.indices
            if attr.HasField("g"):
                yield from _graph_tensors(attr.g)
            for sub in attr.graphs:
                yield from _graph_tensors(sub)


def _all_tensors(model: onnx.ModelProto) -> Iterator[TensorProto]:
    yield from _graph_tensors(model.graph)
    for function in model.functions:
        for node in function.node:
            for attr in node.attribute:
                if attr.HasField("t"):
                    yield attr.t
                yield from attr.tensors
                if attr.HasField("g"):
                    yield from _graph_tensors(attr.g)
                for sub in attr.graphs:
                    yield from _graph_tensors(sub)


def _is_external(tensor: TensorProto) -> bool:
    return tensor.HasField("data_location") and tensor.data_location == TensorProto.EXTERNAL


def _external_tensors(model: onnx.ModelProto) -> Iterator[TensorProto]:
    return (t for t in _all_tensors(model) if _is_external(t))


def _has_external_data(model: onnx.ModelProto) -> bool:
    return any(True for _ in _external_tensors(model))


def _external_location(tensor: TensorProto) -> str:
    for entry in tensor.external_data:
        if entry.key == "location":
            return entry.value
    return ""


# --------------------------------------------------------------------------------------------
# Saving
# --------------------------------------------------------------------------------------------


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return os.path.normcase(os.path.realpath(a)) == os.path.normcase(os.path.realpath(b))


def _check_parents(out: Path, what: str) -> None:
    """ConfigError if the nearest existing ancestor of `out` is not a folder (missing folders
    are fine: the writers create them), or `out` is a dangling link into a missing folder."""
    if os.path.islink(out) and not os.path.exists(out):
        target = Path(os.path.realpath(out))
        if not target.parent.is_dir():
            raise ConfigError(
                f"cannot write {what} {str(out)!r}: it is a link to {str(target)!r}, whose folder does not exist"
            )
        return
    parent = out.parent if str(out.parent) else Path(".")
    while not os.path.lexists(parent):
        if parent.parent == parent:
            return
        parent = parent.parent
    if not parent.is_dir():
        raise ConfigError(f"cannot write {what} {str(out)!r}: {str(parent)!r} is not a directory")


def _output_target(out: Path, what: str = "output") -> tuple[Path, bool]:
    """Where writing `out` really goes, and whether it must be written through in place.

    Returns (the symlink-resolved path, False) for a regular or new file, (`out`, True) for an
    existing character device or FIFO. Raises ConfigError for a folder, a block device, a
    socket or a symlink loop.
    """
    try:
        mode = os.stat(out).st_mode
    except FileNotFoundError:  # a new file, or a dangling link whose target is created
        return Path(os.path.realpath(out)), False
    except OSError as exc:  # ELOOP, EACCES...
        raise ConfigError(f"cannot write {what} {str(out)!r}: {exc.strerror or exc}") from None
    if stat.S_ISREG(mode):
        return Path(os.path.realpath(out)), False
    if stat.S_ISDIR(mode):
        raise ConfigError(f"{what} {str(out)!r} is a directory; give a file name")
    if stat.S_ISCHR(mode) or stat.S_ISFIFO(mode):
        # Opened by the name given: /dev/stdout resolves to "pipe:[...]", which only open()
        # can follow.
        return out, True
    # Writing a model or plot over a disk or into a socket is never what was meant.
    kind = "a block device" if stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode) else "not a regular file"
    raise ConfigError(f"cannot write {what} {str(out)!r}: it is {kind}; give a file name")


def check_side_file(path: PathLike, what: str, *others: PathLike) -> Path:
    """A side output (report, plot, CSV) the CLI will write: not a folder, no file where a folder
    is needed (missing folders are created when it is written), and none of `others` (the
    input model, the output model). ConfigError otherwise."""
    p = Path(path)
    if str(path) == "":
        raise ConfigError(f"the {what} path is empty")
    _check_parents(p, what)
    _output_target(p, what)
    for other in others:
        if os.path.realpath(p) == os.path.realpath(other):
            raise ConfigError(f"{what} {str(path)!r} would overwrite {str(other)!r}")
    return p


def check_output_path(path: PathLike, *, input_path: PathLike | None = None) -> Path:
    """Raise ConfigError if `path` cannot be a model output (the input itself, a folder...)."""
    out = Path(path)
    if str(path) == "":
        raise ConfigError("the output path is empty")
    if input_path is not None and _same_file(out, Path(input_path)):
        raise ConfigError(
            f"refusing to overwrite the input model {str(input_path)!r}; choose another output path"
        )
    _check_parents(out, "output")
    _output_target(out)
    return out


def save_model(
    model: onnx.ModelProto, path: PathLike, *, input_path: PathLike | None = None
) -> Path:
    """Write `model` to `path` atomically; return the path written.

    Refuses (ConfigError) to write over `input_path`. Creates missing parent folders. If the
    model is too large for one protobuf message, its tensors go to `<name>.data` next to it.
    On any failure, nothing is left at `path` or in its folder (an existing file there is kept).
    """
    if not isinstance(model, onnx.ModelProto):
        raise ConfigError(f"save_model needs an onnx.ModelProto, not a {type(model).__name__}")
    out = check_output_path(path, input_path=input_path)
    if _has_external_data(model):
        raise MemccError(
            "the model still refers to external data files; load it with memcc.io.load_model "
            "(which reads all tensors into memory) before saving it elsewhere"
        )

    created_dirs = _make_parents(out.parent)
    try:
        target, through = _output_target(out)
        if serialized_size(model) > EXTERNAL_DATA_THRESHOLD:
            if through:
                raise ConfigError(
                    f"cannot write {str(out)!r}: the model is over 2 GiB and needs an external data "
                    "file next to it, which a device or pipe cannot have; give a regular file name"
                )
            _save_with_external_data(model, target)
        else:
            _write_atomic(target, model.SerializeToString(), through)
    except BaseException as exc:
        _remove_dirs(created_dirs)
        if isinstance(exc, MemccError):
            raise
        if isinstance(exc, OSError):
            raise MemccError(f"cannot write {str(out)!r}: {exc.strerror or exc}") from None
        if isinstance(exc, (ValueError, TypeError)) or type(exc).__name__ == "EncodeError":
            raise MemccError(f"cannot serialize the model to {str(out)!r}: {_one_line(exc)}") from None
        raise
    return out


def _make_parents(folder: Path) -> list[Path]:
    """Create `folder` and missing ancestors; return those created, deepest first."""
    missing = []
    f = folder if str(folder) else Path(".")
    while not f.exists():
        missing.append(f)
        if f.parent == f:
            break
        f = f.parent
    for d in reversed(missing):
        try:
            d.mkdir()
        except FileExistsError:
            pass
        except OSError as exc:
            _remove_dirs([m for m in missing if m.exists()])
            raise MemccError(f"cannot create folder {str(d)!r}: {exc.strerror or exc}") from None
    return missing


def _remove_dirs(dirs: list[Path]) -> None:
    for d in dirs:  # deepest first
        try:
            d.rmdir()
        except OSError:
            pass


def _temp_path(out: Path, suffix: str = "") -> Path:
    fd, name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=f"{suffix}.tmp", dir=out.parent or ".")
    os.close(fd)
    return Path(name)


def _write_atomic(out: Path, data: bytes, through: bool = False) -> None:
    """Write `data` to `out`, already resolved by `_output_target`."""
    if through:
        # A device or pipe has no folder entry to rename over, and replacing it would turn
        # /dev/null into a file: it gets the bytes themselves (no fsync: pipes reject it).
        with open(out, "wb") as f:
            f.write(data)
        return
    tmp = _temp_path(out)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        _copy_mode_for_new_file(tmp, out)
        os.replace(tmp, out)
    except BaseException:
        _unlink_quietly(tmp)
        raise


@contextlib.contextmanager
def atomic_output(path: PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path for `path`; it becomes `path` only if the block succeeds.

    For side files (reports, plots, arrays) written by code that wants a file name: on any
    failure the temporary file is removed and `path` is left as it was. Missing folders are
    created, and removed again on failure. `suffix` (default: `path`'s own) keeps writers that
    choose a format by extension, such as matplotlib, working. A symlink is followed; a
    character device or FIFO is written through (its bytes copied in once the block succeeded).
    """
    out = Path(path)
    created = _make_parents(out.parent)
    try:
        target, through = _output_target(out)
        # A device's folder (/dev) is no place for a temporary file: use the system's.
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.tmp.", suffix=out.suffix if suffix is None else suffix,
                                    dir=None if through else target.parent)
    except OSError as exc:
        _remove_dirs(created)
        raise MemccError(f"cannot write {str(out)!r}: {exc.strerror or exc}") from None
    except BaseException:
        _remove_dirs(created)
        raise
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if through:
            with open(tmp, "rb") as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
            _unlink_quietly(tmp)
        else:
            _copy_mode_for_new_file(tmp, target)
            os.replace(tmp, target)
    except OSError as exc:
        _unlink_quietly(tmp)
        _remove_dirs(created)
        raise MemccError(f"cannot write {str(out)!r}: {exc.strerror or exc}") from None
    except BaseException:
        _unlink_quietly(tmp)
        _remove_dirs(created)
        raise


def _copy_mode_for_new_file(tmp: Path, target: Path | None = None) -> None:
    # mkstemp creates files readable by the owner only; an existing file keeps its permissions,
    # a new one gets the usual ones.
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode) if target is not None else None
    except OSError:
        mode = None
    if mode is None:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    try:
        os.chmod(tmp, mode)
    except OSError:
        pass


def _unlink_quietly(p: Path) -> None:
    try:
        p.unlink()
    except OSError:
        pass


def _save_with_external_data(model: onnx.ModelProto, out: Path) -> None:
    """Write large tensors to `<out>.data`, the rest of the model to `out`, both atomically.

    The caller's model is restored afterwards (its tensors are read back from the data file, so
    memory use never holds two copies of the weights).
    """
    from onnx import numpy_helper

    location = out.name + ".data"
    data_final = out.parent / location
    tmp_data = _temp_path(out, ".data")
    tmp_model: Path | None = None
    data_in_place = False
    moved: list[tuple[TensorProto, int, int]] = []  # tensor, offset, length
    try:
        with open(tmp_data, "wb") as fdata:
            for tensor in _all_tensors(model):
                if tensor.data_type in (TensorProto.STRING, TensorProto.UNDEFINED):
                    continue
                if not tensor.HasField("raw_data"):
                    # Typed fields (float_data...) are converted to raw bytes to be moved out.
                    arr = numpy_helper.to_array(tensor)
                    if arr.nbytes < EXTERNAL_TENSOR_MIN_BYTES:
                        continue
                    new = numpy_helper.from_array(arr, tensor.name)
                    tensor.CopyFrom(new)
                raw = tensor.raw_data
                if len(raw) < EXTERNAL_TENSOR_MIN_BYTES:
                    continue
                # Align every tensor on 4 KiB, so that the data file can be memory-mapped.
                offset = fdata.tell()
                pad = (-offset) % 4096
                if pad:
                    fdata.write(b"\0" * pad)
                    offset += pad
                fdata.write(raw)
                length = len(raw)
                del raw
                tensor.ClearField("raw_data")
                del tensor.external_data[:]
                for key, value in (("location", location), ("offset", str(offset)), ("length", str(length))):
                    entry = tensor.external_data.add()
                    entry.key = key
                    entry.value = value
                tensor.data_location = TensorProto.EXTERNAL
                moved.append((tensor, offset, length))
            fdata.flush()
            os.fsync(fdata.fileno())
        _copy_mode_for_new_file(tmp_data, data_final)

        serialized = model.SerializeToString()
        tmp_model = _temp_path(out)
        with open(tmp_model, "wb") as fmodel:
            fmodel.write(serialized)
            fmodel.flush()
            os.fsync(fmodel.fileno())
        del serialized
        _copy_mode_for_new_file(tmp_model, out)

        os.replace(tmp_data, data_final)
        data_in_place = True
        os.replace(tmp_model, out)
    except BaseException:
        # Give the caller its tensors back before removing the file that holds them.
        source = data_final if data_in_place else tmp_data
        try:
            _restore_tensors(moved, source)
        finally:
            _unlink_quietly(source)
            if tmp_model is not None:
                _unlink_quietly(tmp_model)
        raise
    _restore_tensors(moved, data_final)


def _restore_tensors(moved: list[tuple[TensorProto, int, int]], data_file: Path) -> None:
    if not moved:
        return
    with open(data_file, "rb") as f:
        for tensor, offset, length in moved:
            f.seek(offset)
            tensor.raw_data = f.read(length)
            del tensor.external_data[:]
            tensor.ClearField("data_location")
