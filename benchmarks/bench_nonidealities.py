"""Cost of the run-time non-idealities: the op's time with read noise, the I-V nonlinearity,
both, and drift, next to the same layer without them (interleaved runs, medians).

    MEMCC_OPS_LIBRARY=build/ops/libmemcc_ops.so python benchmarks/bench_nonidealities.py [--rounds 30]

Layers: matmul 64x512x512 and a conv layer (B16, 64->64 ch, 16x16, 3x3), each in three periphery
settings: "ideal" (no DAC/ADC), "adc" (8-bit DAC and ADC, 128x128 tiles) and "range" (fixed
input range 4, 8-bit DAC, no ADC). Sessions use --threads intra-op threads (default 1: ratios on a
loaded machine are steadier single-threaded). Timings are per op call, session overhead included.
On CPUs with AMX-BF16 the read-noise variance runs on the tile unit (MEMCC_OPS_AMX=0: float32).
"""

from __future__ import annotations

import argparse
import functools

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from memcc.runtime import session
from timing import time_interleaved

EFFECTS = {
    "none": {},
    "noise": dict(read_noise_std=0.05, noise_seed=1),
    "iv": dict(iv_a=0.32, iv_b=2.7),
    "noise+iv": dict(read_noise_std=0.05, noise_seed=1, iv_a=0.32, iv_b=2.7),
    "drift": dict(drift_nu=0.05, drift_nu_std=0.01, drift_seed=2),
    "all": dict(read_noise_std=0.05, noise_seed=1, iv_a=0.32, iv_b=2.7, drift_nu=0.05, drift_nu_std=0.01),
}
PERIPHERY = {
    "ideal": {},
    "adc": dict(dac_bits=8, adc_bits=8, tile_shape=[128, 128]),
    # A fixed input range and 8-bit DAC, no ADC: encoded element-wise, onnxruntime Gemm/Conv.
    "range": dict(input_range=4.0, dac_bits=8),
}


def layer_model(G, conv: bool, attrs: dict):
    inits = [numpy_helper.from_array(G.astype(np.float32), "G")]
    extra = dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1]) if conv else {}
    node = helper.make_node("MemristiveMatMul", ["x", "G", "", "T"], ["y"], domain="ai.memcc",
                            weight_scale=5e3, **extra, **attrs)
    graph = helper.make_graph(
        [node], "bench",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("T", TensorProto.FLOAT, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.memcc", 1)])


THREADS = 1
# The target: read noise and the I-V nonlinearity each cost at most 1.5x the layer.
TARGET = 1.5
TARGETED = ("noise", "iv")
MISSES: list[str] = []


def sessions_for(G, conv, periphery):
    import onnxruntime as ort

    out = {}
    for name, eff in EFFECTS.items():
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = THREADS
        out[name] = session(layer_model(G, conv, {**PERIPHERY[periphery], **eff}), sess_options=opts)
    return out


def bench(label, G, x, conv, rounds):
    feeds = {"x": x, "T": np.array(3600.0, np.float32)}
    for periphery in PERIPHERY:
        sess = sessions_for(G, conv, periphery)
        for s in sess.values():  # warm up: packing, scratch
            for _ in range(3):
                s.run(None, feeds)
        # Interleaved, so load changes hit every variant alike.
        times = time_interleaved({k: functools.partial(s.run, None, feeds) for k, s in sess.items()}, rounds, THREADS)
        med = {k: float(np.median(v)) for k, v in times.items()}
        base = med["none"]
        cells = []
        for k, v in med.items():
            over = k in TARGETED and v / base > TARGET
            if over:
                MISSES.append(f"{label} {periphery} {k} {v / base:.2f}x")
            cells.append(f"{k} {1e3 * v:7.3f} ms ({v / base:4.2f}x{'*' if over else ''})")
        print(f"{label:<28} {periphery:<6} {'  '.join(cells)}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1, help="intra-op threads per session")
    args = ap.parse_args()
    global THREADS
    THREADS = args.threads
    g = np.random.default_rng(0)
    G = g.uniform(1e-6, 1e-4, (2, 512, 512))
    bench("matmul 64x512x512", G, g.standard_normal((64, 512)).astype(np.float32), False, args.rounds)
    Gc = g.uniform(1e-6, 1e-4, (2, 64 * 9, 64))
    bench("conv B16 64->64 16x16 3x3", Gc, g.standard_normal((16, 64, 16, 16)).astype(np.float32), True, args.rounds)
    print(f"target: read noise and I-V each <= {TARGET}x the layer without them; "
          + (f"over it (*): {'; '.join(MISSES)}" if MISSES else "all cells meet it"))


if __name__ == "__main__":
    main()
