"""memcc's graph passes (installed as `memcc.passes`).

Each pass does one job on a `CompileContext`; `default_passes()` is the standard order:

1. `Normalize`            Constant/Identity weights → initializers; shape inference
2. `FoldBatchNorm`        BatchNormalization folded into the Conv/Gemm before it
3. `RewriteGemm`          Gemm      → MemristiveMatMul (matmul mode)
4. `RewriteMatMul`        MatMul    → MemristiveMatMul (matmul mode)
5. `RewriteConv`          Conv      → MemristiveMatMul (conv mode)
6. `MapWeights`           weights   → target conductances (nominal device window, scheme)
7. `ProgramDevices`       targets   → conductances the simulated devices reach (per-device
                          sampled parameters; naive pulse programming or set-to-target)
8. `CrossbarAttributes`   tile_shape, voltages, DAC/ADC attributes
9. `FuseActivation`       a Relu that alone reads a layer's output → the node's `activation`
10. `FusePool`            a MaxPool (non-overlapping windows, no padding) that alone reads a conv
                          layer's output → the node's `max_pool`
11. `Cleanup`             unused initializers removed, report ordered
12. `Check`               onnx.checker on the result

Non-idealities of the programmed chip (`memcc.passes.nonidealities`: `FiniteStates`,
`DeviceFaults`, `Endurance`) and those the op evaluates at every read (`ReadNoise`,
`NonlinearIV`, `Drift`: they set op attributes) are passes too, off by default:
`memcc.compile(..., nonidealities=[...])` inserts them after `ProgramDevices`, in the order
given (see `with_nonidealities`; build one by name with `nonideality("faults", stuck_lrs=0.01)`).

Compose your own with `Pipeline(default_passes())` and its `insert_after`/`replace`/`remove`,
or pass a list to `memcc.compile(..., passes=[...])`. A custom pass subclasses `Pass` (or
`RewritePass` for a new layer type) and implements `run(ctx)`.
"""

from __future__ import annotations

from .base import (
    OP_DOMAIN,
    OP_TYPE,
    OP_VERSION,
    CompileContext,
    CompileOptions,
    CompileReport,
    FunctionPass,
    MappedLayer,
    Pass,
    Pipeline,
    RewritePass,
    SkippedNode,
)
from .cleanup import Check, Cleanup
from .crossbar_attributes import CrossbarAttributes
from .fold_batchnorm import FoldBatchNorm
from .fuse_activation import FuseActivation
from .fuse_pool import FusePool
from .map_weights import MapWeights
from .nonidealities import (
    DeviceFaults,
    Drift,
    Endurance,
    FiniteStates,
    NonidealityPass,
    NonlinearIV,
    ReadNoise,
    RuntimeNonideality,
    list_nonidealities,
    make_nonideality,
    make_nonidealities,
    nonideality,
    register_nonideality,
    with_nonidealities,
)
from .normalize import Normalize
from .program_devices import ProgramDevices
from .rewrite_conv import RewriteConv
from .rewrite_gemm import RewriteGemm
from .rewrite_matmul import RewriteMatMul


def default_passes() -> list[Pass]:
    """A fresh list of the default pipeline's passes, in order."""
    return [
        Normalize(),
        FoldBatchNorm(),
        RewriteGemm(),
        RewriteMatMul(),
        RewriteConv(),
        MapWeights(),
        ProgramDevices(),
        CrossbarAttributes(),
        FuseActivation(),
        FusePool(),
        Cleanup(),
        Check(),
    ]


__all__ = [
    "OP_DOMAIN", "OP_TYPE", "OP_VERSION",
    "CompileContext", "CompileOptions", "CompileReport", "MappedLayer", "SkippedNode",
    "Pass", "FunctionPass", "RewritePass", "Pipeline", "default_passes",
    "Normalize", "FoldBatchNorm", "RewriteGemm", "RewriteMatMul", "RewriteConv",
    "MapWeights", "ProgramDevices", "CrossbarAttributes", "FuseActivation", "FusePool", "Cleanup",
    "Check",
    "NonidealityPass", "FiniteStates", "DeviceFaults", "Endurance",
    "RuntimeNonideality", "ReadNoise", "NonlinearIV", "Drift",
    "nonideality", "make_nonideality", "make_nonidealities", "with_nonidealities",
    "list_nonidealities", "register_nonideality",
]
