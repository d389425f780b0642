"""Time MemristiveMatMul against onnxruntime's own MatMul / Conv on the same shapes.

    python ops/tests/bench_ort.py path/to/libmemcc_ops.so [threads [runs]]

Best of 3 medians of 20 runs after warm-up, intra-op threads as given (default 2).
Not a test: prints a table.
"""

import sys
import time

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

LIB = sys.argv[1]
THREADS = int(sys.argv[2]) if len(sys.argv) > 2 else 2
RUNS = int(sys.argv[3]) if len(sys.argv) > 3 else 20
RNG = np.random.default_rng(0)


def make(nodes, x_shape, inits, opsets):
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, list(x_shape))],
                          [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)], inits)
    return helper.make_model(g, opset_imports=opsets)


def sess(m):
    so = ort.SessionOptions()
    so.intra_op_num_threads = THREADS
    so.register_custom_ops_library(LIB)
    return ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])


def medians_ms(sessions, x, n=20, rounds=3):
    """Per session, the best of `rounds` medians of n runs. Sessions take turns in blocks of n
    runs: interleaving single runs would let one session's spinning pool threads slow the next,
    and the best block filters out load from elsewhere on the machine."""
    best = [float("inf")] * len(sessions)
    for _ in range(rounds):
        for i, s in enumerate(sessions):
            for _ in range(3):
                s.run(None, {"X": x})
            ts = []
            for _ in range(n):
                t = time.perf_counter()
                s.run(None, {"X": x})
                ts.append(time.perf_counter() - t)
            best[i] = min(best[i], 1e3 * float(np.median(ts)))
    return best


def mem_model(x_shape, G, bias, **attrs):
    node = helper.make_node("MemristiveMatMul", ["X", "G", "B"], ["Y"], domain="ai.memcc", **attrs)
    return make([node], x_shape, [numpy_helper.from_array(G, "G"), numpy_helper.from_array(bias, "B")],
                [helper.make_opsetid("", 17), helper.make_opsetid("ai.memcc", 1)])


def bench_matmul(M, K, N):
    x = RNG.standard_normal((M, K)).astype(np.float32)
    W = (RNG.standard_normal((K, N)) * 0.05).astype(np.float32)
    b = RNG.standard_normal(N).astype(np.float32)
    ref = make([helper.make_node("MatMul", ["X", "W"], ["T"]), helper.make_node("Add", ["T", "B"], ["Y"])],
               x.shape, [numpy_helper.from_array(W, "W"), numpy_helper.from_array(b, "B")],
               [helper.make_opsetid("", 17)])
    G = np.stack([np.maximum(W, 0), np.maximum(-W, 0)]) * 1e-4
    t_ref, t_ideal, t_tiled = medians_ms(
        [sess(ref), sess(mem_model(x.shape, G.astype(np.float32), b, weight_scale=1e4)),
         sess(mem_model(x.shape, G.astype(np.float32), b, weight_scale=1e4, tile_shape=[128, 128], dac_bits=8,
                        adc_bits=8))], x, RUNS)
    print(f"matmul {M}x{K}x{N}: ORT MatMul+Add {t_ref:.3f} ms | ideal {t_ideal:.3f} ms ({t_ideal / t_ref:.2f}x) | "
          f"128x128 tiles 8b DAC/ADC {t_tiled:.3f} ms ({t_tiled / t_ref:.2f}x)")


def bench_conv(B, C, N, H, k, group=1):
    x = RNG.standard_normal((B, C, H, H)).astype(np.float32)
    W = (RNG.standard_normal((N, C // group, k, k)) * 0.05).astype(np.float32)
    b = RNG.standard_normal(N).astype(np.float32)
    p = k // 2
    ref = make([helper.make_node("Conv", ["X", "W", "B"], ["Y"], pads=[p] * 4, group=group)], x.shape,
               [numpy_helper.from_array(W, "W"), numpy_helper.from_array(b, "B")], [helper.make_opsetid("", 17)])
    Wm = W.reshape(N, -1).T  # [K, N]
    G = (np.stack([np.maximum(Wm, 0), np.maximum(-Wm, 0)]) * 1e-4).astype(np.float32)
    conv = dict(kernel_shape=[k, k], pads=[p] * 4, group=group)
    t_ref, t_ideal, t_tiled = medians_ms(
        [sess(ref), sess(mem_model(x.shape, G, b, weight_scale=1e4, **conv)),
         sess(mem_model(x.shape, G, b, weight_scale=1e4, tile_shape=[128, 128], dac_bits=8, adc_bits=8, **conv))],
        x, RUNS)
    print(f"conv B{B} {C}->{N} {H}x{H} k{k} g{group}: ORT Conv {t_ref:.3f} ms | ideal {t_ideal:.3f} ms "
          f"({t_ideal / t_ref:.2f}x) | 128x128 tiles 8b DAC/ADC {t_tiled:.3f} ms ({t_tiled / t_ref:.2f}x)")


if __name__ == "__main__":
    print(f"intra-op threads: {THREADS}")
    bench_matmul(64, 512, 512)
    bench_matmul(1024, 1024, 1024)
    bench_matmul(4096, 1152, 128)
    bench_matmul(64, 768, 3072)
    bench_conv(64, 64, 64, 16, 3)
    bench_conv(8, 3, 32, 32, 3)
    bench_conv(16, 64, 64, 16, 3, group=64)
