"""Running memcc models in onnxruntime with memcc's custom-op library registered.

`library_path()` locates `libmemcc_ops.so` inside the installed package; `session()` opens a
model (ModelProto, bytes or path) in an `onnxruntime.InferenceSession` that knows the
`ai.memcc::MemristiveMatMul` op; `run()` does both and returns the outputs.
"""

from __future__ import annotations

import ctypes
import os
import sys
import tempfile
import weakref
from pathlib import Path
from typing import Mapping, Sequence, Union

import numpy as np
import onnx

from memcc.errors import ConfigError, MemccError, ModelLoadError

#: Environment variable that points memcc at a specific build of the op library (development).
LIBRARY_ENV = "MEMCC_OPS_LIBRARY"

_PACKAGE_DIR = Path(os.path.abspath(__file__)).parent  # not resolve(): symlinked dev trees

if sys.platform == "win32":
    _LIB_NAMES = ("memcc_ops.dll", "libmemcc_ops.dll")
elif sys.platform == "darwin":
    _LIB_NAMES = ("libmemcc_ops.dylib", "libmemcc_ops.so")
else:
    _LIB_NAMES = ("libmemcc_ops.so",)

_openblas_handle = None

# SessionOptions the library was registered on: registering twice on the same options makes
# onnxruntime refuse the next session ("Domain already set in registry").
_registered_options: "weakref.WeakSet" = weakref.WeakSet()


def library_path() -> str:
    """Return the path of memcc's op library, or raise MemccError saying how to build it."""
    override = os.environ.get(LIBRARY_ENV)
    if override:
        if not Path(override).is_file():
            raise MemccError(
                f"{LIBRARY_ENV} is set to {override!r}, which is not a file; unset it to use the "
                "library installed with memcc, or point it at a built libmemcc_ops.so"
            )
        return str(Path(override).resolve())
    for folder in (_PACKAGE_DIR, _PACKAGE_DIR / "lib"):
        for name in _LIB_NAMES:
            candidate = folder / name
            if candidate.is_file():
                return str(candidate)
    raise MemccError(
        f"memcc's op library {_LIB_NAMES[0]} is not installed in {_PACKAGE_DIR}; build and "
        "install memcc with `pip install .` from the source tree (it compiles the library with "
        f"CMake), or set {LIBRARY_ENV} to the path of a libmemcc_ops.so you built"
    )


def _preload_openblas() -> None:
    """Load scipy-openblas32 globally so the op library's BLAS symbols resolve.

    The library carries an RPATH to the wheel's folder already; this is a second way to find it
    when the package layout differs (editable installs, relocated environments).
    """
    global _openblas_handle
    if _openblas_handle is not None:
        return
    try:
        import scipy_openblas32  # type: ignore[import-not-found]
    except ImportError:
        _openblas_handle = False
        return
    try:
        lib = os.path.join(scipy_openblas32.get_lib_dir(), scipy_openblas32.get_library(fullname=True))
        _openblas_handle = ctypes.CDLL(lib, mode=ctypes.RTLD_GLOBAL)
    except (OSError, IndexError, AttributeError):
        _openblas_handle = False


_native_handle = None  # ctypes.CDLL of the op library for its C entry points; False: unavailable


def native_routines():
    """The op library loaded with ctypes, for its plain C entry points (`c_api.cc`), or None
    when the library is not built, cannot be loaded, or predates those entry points."""
    global _native_handle
    if _native_handle is None:
        _native_handle = False
        try:
            _preload_openblas()
            lib = ctypes.CDLL(library_path())
            lib.memcc_nearest_state_index.restype = ctypes.c_int
            lib.memcc_nearest_state_index.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p,
                                                      ctypes.c_int64, ctypes.c_void_p]
            _native_handle = lib
        except (MemccError, OSError, AttributeError):
            pass
    return _native_handle or None


def _one_line(exc: BaseException) -> str:
    parts = [p.strip() for p in str(exc).splitlines() if p.strip()]
    line = " ".join(parts)
    return line if len(line) <= 500 else line[:497] + "..."


def _is_ort_error(exc: BaseException) -> bool:
    return type(exc).__module__.startswith("onnxruntime")


def session(
    model_or_path: Union[str, "os.PathLike[str]", bytes, onnx.ModelProto],
    providers: Sequence | None = None,
    sess_options=None,
):
    """Open the model in onnxruntime with memcc's op library registered.

    `providers` defaults to the CPU provider. `sess_options` (an onnxruntime.SessionOptions) is
    used as given, with the library registered on it.
    """
    import onnxruntime as ort

    lib = library_path()
    _preload_openblas()
    options = sess_options if sess_options is not None else ort.SessionOptions()
    if options not in _registered_options:
        try:
            options.register_custom_ops_library(lib)
        except Exception as exc:
            if not _is_ort_error(exc) and not isinstance(exc, RuntimeError):
                raise
            raise MemccError(f"onnxruntime could not load memcc's op library {lib}: {_one_line(exc)}") from None
        try:
            _registered_options.add(options)
        except TypeError:  # an options object that cannot be weakly referenced
            pass
    if providers is None:
        providers = ["CPUExecutionProvider"]

    tmpdir = None
    if isinstance(model_or_path, onnx.ModelProto):
        from memcc.io import serialized_size

        if serialized_size(model_or_path) < 2**31 - 2**20:
            source: Union[str, bytes] = model_or_path.SerializeToString()
        else:
            # Too large for one protobuf message: write it with external data and open the file.
            from memcc.io import save_model

            tmpdir = tempfile.TemporaryDirectory(prefix="memcc-")
            source = str(save_model(model_or_path, Path(tmpdir.name) / "model.onnx"))
    elif isinstance(model_or_path, (bytes, bytearray, memoryview)):
        source = bytes(model_or_path)
    elif isinstance(model_or_path, (str, os.PathLike)):
        path = Path(model_or_path)
        if not path.exists():
            raise ModelLoadError(f"{path}: no such file")
        if path.is_dir():
            raise ModelLoadError(f"{path}: is a directory, not an ONNX model file")
        source = str(path)
    else:
        raise ModelLoadError(
            f"cannot open a session on a {type(model_or_path).__name__}; "
            "pass a file path, bytes or an onnx.ModelProto"
        )
    try:
        return ort.InferenceSession(source, sess_options=options, providers=list(providers))
    except Exception as exc:
        if not _is_ort_error(exc) and not isinstance(exc, RuntimeError):
            raise
        raise MemccError(f"onnxruntime cannot open the model: {_one_line(exc)}") from None
    finally:
        if tmpdir is not None:
            tmpdir.cleanup()


_ORT_TO_NUMPY = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(int8)": np.int8,
    "tensor(int16)": np.int16,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
    "tensor(uint8)": np.uint8,
    "tensor(uint16)": np.uint16,
    "tensor(uint32)": np.uint32,
    "tensor(uint64)": np.uint64,
    "tensor(bool)": np.bool_,
}


def prepare_inputs(sess, inputs: Union[np.ndarray, Mapping[str, np.ndarray]]) -> dict:
    """Match `inputs` to the session's inputs by name (or the only input), casting dtypes."""
    declared = sess.get_inputs()
    names = [i.name for i in declared]
    # Inputs with a default (e.g. the drift non-ideality's memcc_time_s) may be given by name.
    optional = list(getattr(sess, "get_overridable_initializers", lambda: [])())
    if isinstance(inputs, Mapping):
        feed = dict(inputs)
        unknown = [k for k in feed if k not in names and k not in {o.name for o in optional}]
        if unknown:
            raise ConfigError(
                f"the model has no input named {unknown[0]!r}; its inputs are: {', '.join(names)}"
            )
        missing = [n for n in names if n not in feed]
        if missing:
            raise ConfigError(f"no value given for the model input {missing[0]!r}")
    else:
        if len(names) != 1:
            raise ConfigError(
                f"the model has {len(names)} inputs ({', '.join(names)}); pass a dict of arrays by name"
            )
        feed = {names[0]: inputs}
    out = {}
    for info in declared + [o for o in optional if isinstance(inputs, Mapping) and o.name in feed]:
        value = np.asarray(feed[info.name])
        want = _ORT_TO_NUMPY.get(info.type)
        if want is not None and value.dtype != want:
            if value.dtype.kind not in "biuf":
                raise ConfigError(
                    f"input {info.name!r} has dtype {value.dtype}, the model expects {info.type}"
                )
            value = value.astype(want)
        shape = info.shape
        if isinstance(shape, list) and len(shape) != value.ndim:
            raise ConfigError(
                f"input {info.name!r} has shape {list(value.shape)}, the model expects rank "
                f"{len(shape)} ({_shape_text(shape)})"
            )
        if isinstance(shape, list):
            for axis, (got, dim) in enumerate(zip(value.shape, shape)):
                if isinstance(dim, int) and dim > 0 and got != dim:
                    raise ConfigError(
                        f"input {info.name!r} has shape {list(value.shape)}, the model expects "
                        f"{_shape_text(shape)} (axis {axis})"
                    )
        out[info.name] = np.ascontiguousarray(value)
    return out


def _shape_text(shape) -> str:
    return "[" + ", ".join(str(d) if d is not None else "?" for d in shape) + "]"


def run(
    model_or_path,
    inputs: Union[np.ndarray, Mapping[str, np.ndarray]],
    providers: Sequence | None = None,
    sess_options=None,
    output_names: Sequence[str] | None = None,
) -> list:
    """Run the model once on `inputs` (one array, or a dict by input name); return its outputs."""
    sess = model_or_path if _looks_like_session(model_or_path) else session(
        model_or_path, providers=providers, sess_options=sess_options
    )
    feed = prepare_inputs(sess, inputs)
    try:
        return sess.run(list(output_names) if output_names else None, feed)
    except Exception as exc:
        if not _is_ort_error(exc) and not isinstance(exc, RuntimeError):
            raise
        raise MemccError(f"onnxruntime failed to run the model: {_one_line(exc)}") from None


def _looks_like_session(obj) -> bool:
    return hasattr(obj, "run") and hasattr(obj, "get_inputs") and hasattr(obj, "get_outputs")
