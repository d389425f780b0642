"""memcc: compile ONNX models into simulations of memristive crossbar hardware.

`compile()` maps a model's Gemm/MatMul/Conv layers onto crossbars and returns a new ONNX model
whose layers are `ai.memcc::MemristiveMatMul` nodes (docs/op-spec.md); `session()` opens it in
onnxruntime with memcc's custom-op library registered.
"""

from memcc.errors import ConfigError, MemccError, ModelLoadError, NothingToMapError

__version__ = "0.1.0"

OP_DOMAIN = "ai.memcc"
OP_TYPE = "MemristiveMatMul"
OP_VERSION = 1

# Public submodules, imported on first attribute access.
_SUBMODULES = ("compiler", "config", "datasets", "devices", "info", "io", "mapping", "passes", "plots",
               "programming", "quantize", "reference", "runtime", "sweep")


def __getattr__(name):
    # Imported lazily so that `import memcc` stays cheap for the CLI and the op library can be
    # located without pulling in the compiler's dependencies.
    if name == "compile":
        from memcc.compiler import compile as _compile

        return _compile
    if name in ("session", "library_path", "run"):
        from memcc import runtime

        return getattr(runtime, name)
    if name == "passes":
        # In a source checkout the passes live in the top-level passes/ folder; the compiler
        # knows how to load them as memcc.passes.
        from memcc.compiler import _import_passes

        return _import_passes()
    if name in _SUBMODULES:
        # `import memcc` then `memcc.runtime.session(...)` (as the README writes it) must work
        # without a separate `import memcc.runtime`.
        import importlib

        return importlib.import_module(f"memcc.{name}")
    raise AttributeError(f"module 'memcc' has no attribute {name!r}")


__all__ = [
    "compile",
    "session",
    "library_path",
    "run",
    "MemccError",
    "ModelLoadError",
    "ConfigError",
    "NothingToMapError",
    "OP_DOMAIN",
    "OP_TYPE",
    "OP_VERSION",
]
