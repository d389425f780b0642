"""Shared helpers of memcc's tests.

- `run_original(model, feeds)`: onnxruntime on the ORIGINAL model (the ground truth).
- `run_reference(model, feeds)`: onnx's ReferenceEvaluator with memcc.reference's op.
- `run_library(model, feeds)`: onnxruntime with memcc's C++ op library; skips the test when the
  library is not built/installed.
- `assert_matches(compiled, original, feeds)`: compiled model (reference evaluator, and the C++
  library when available) vs. onnxruntime on the original, to 1e-4 relative error.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

RTOL = 1e-4


def _as_model(model):
    return model if isinstance(model, onnx.ModelProto) else onnx.load(str(model))


def run_original(model, feeds: dict) -> list[np.ndarray]:
    model = _as_model(model)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def run_reference(model, feeds: dict) -> list[np.ndarray]:
    from memcc.reference import evaluator

    return evaluator(_as_model(model)).run(None, feeds)


def library_available() -> bool:
    """Whether memcc's C++ op library is installed. `make test` sets MEMCC_REQUIRE_LIBRARY=1 so
    that a missing library fails the run instead of silently skipping the tests that need it."""
    import os

    from memcc.errors import MemccError
    from memcc.runtime import library_path

    try:
        found = os.path.isfile(library_path())
    except MemccError:
        found = False
    if not found and os.environ.get("MEMCC_REQUIRE_LIBRARY") == "1":
        raise RuntimeError("MEMCC_REQUIRE_LIBRARY=1 but memcc's C++ op library is not installed")
    return found


def run_library(model, feeds: dict) -> list[np.ndarray]:
    if not library_available():
        pytest.skip("memcc's C++ op library is not built")
    from memcc.runtime import session

    return session(_as_model(model)).run(None, feeds)


def assert_close(actual, expected, rtol: float = RTOL, what: str = "") -> None:
    """Relative error (max |a − e| over max |e|) at most rtol, elementwise allclose otherwise."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    scale = max(float(np.max(np.abs(expected))) if expected.size else 0.0, 1e-6)
    err = float(np.max(np.abs(actual.astype(np.float64) - expected))) if expected.size else 0.0
    assert err <= rtol * scale, f"{what}: max abs error {err:.3g} > {rtol:g} · {scale:.3g}"


def assert_matches(compiled, original, feeds: dict, *, outputs=None, library: bool = True) -> None:
    """The compiled model computes what the original does (float outputs only)."""
    want = run_original(original, feeds)
    got = run_reference(compiled, feeds)
    idx = range(len(want)) if outputs is None else outputs
    for i in idx:
        if np.issubdtype(np.asarray(want[i]).dtype, np.floating):
            assert_close(got[i], want[i], what=f"reference evaluator, output {i}")
        else:
            np.testing.assert_array_equal(got[i], want[i])
    if library and library_available():
        from memcc.runtime import session

        lib = session(_as_model(compiled)).run(None, feeds)
        for i in idx:
            if np.issubdtype(np.asarray(want[i]).dtype, np.floating):
                assert_close(lib[i], want[i], what=f"C++ library, output {i}")


@pytest.fixture
def gen():
    return np.random.default_rng(1234)


def fifo_reader(path):
    """Start a thread that reads the FIFO `path` to its end; join it, then read `.data`."""
    import threading

    box = {}

    def read():
        with open(path, "rb") as f:
            box["data"] = f.read()

    t = threading.Thread(target=read, daemon=True)
    t.start()
    t.box = box
    return t
