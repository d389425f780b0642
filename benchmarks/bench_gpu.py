"""GPU cost of memcc's simulation: original vs compiled model, both in onnxruntime-gpu with the
CUDA execution provider, and the crossbar kernel's share of the GPU's FP32 peak.

    python benchmarks/bench_gpu.py [--batch 256] [--repeats 50] [--json out.json]

The models are bench_cpu.py's (a CNN, an MLP, a transformer encoder), compiled twice -- ideal
mode, and 128x128 tiles with 8-bit DAC and ADC. Inputs and outputs are bound in GPU memory
(io_binding), so the timings hold the device work and onnxruntime's overhead, not host copies;
runs are interleaved and medians reported. TF32 is off for the original (use_tf32=0, unless
--tf32): memcc's kernels compute in FP32, as the spec's float tolerance needs, and the
comparison is FP32 against FP32. Targets: ideal <= 1.5x the original, tiled <= 2.5x.

The throughput part times one large matmul layer (--layer MxKxN) alone and reports
2*M*K*N / time against the FP32 peak (--peak-tflops, or looked up by the GPU's name).

A benchmark, not a test: it asserts nothing about time. Needs onnxruntime-gpu and a GPU.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_cpu import build_models  # noqa: E402  (same models as the CPU benchmark)

TARGET_IDEAL = 1.5
TARGET_TILED = 2.5
# FP32 (non-tensor-core) peaks, TFLOP/s, from NVIDIA's data sheets (boost clock).
FP32_PEAK = {"H100 PCIe": 51.2, "H100 NVL": 60.0, "H100": 66.9, "H200": 66.9, "A100": 19.5, "L40S": 91.6}


def gpu_name() -> str:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=30)
        return out.stdout.strip().splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return "unknown GPU"


def peak_for(name: str) -> float | None:
    for key in sorted(FP32_PEAK, key=len, reverse=True):  # "H100 PCIe" before "H100"
        if key.lower() in name.lower():
            return FP32_PEAK[key]
    return None


def cuda_session(model, *, memcc_ops: bool, tf32: bool):
    import onnxruntime as ort

    import memcc

    so = ort.SessionOptions()
    so.log_severity_level = 3
    providers = [("CUDAExecutionProvider", {"use_tf32": "1" if tf32 else "0"}), "CPUExecutionProvider"]
    if memcc_ops:
        return memcc.session(model, providers=providers, sess_options=so)
    return ort.InferenceSession(model.SerializeToString(), sess_options=so, providers=providers)


class BoundRun:
    """One session with its input and output bound in GPU memory."""

    def __init__(self, sess, x: np.ndarray):
        import onnxruntime as ort

        self.sess = sess
        self.binding = sess.io_binding()
        self.x = ort.OrtValue.ortvalue_from_numpy(x, "cuda", 0)
        self.binding.bind_ortvalue_input(sess.get_inputs()[0].name, self.x)
        self.binding.bind_output(sess.get_outputs()[0].name, "cuda", 0)

    def __call__(self) -> float:
        t0 = time.perf_counter()
        self.sess.run_with_iobinding(self.binding)  # returns once the device work is done
        return time.perf_counter() - t0

    def output(self) -> np.ndarray:
        return self.binding.get_outputs()[0].numpy()


def time_interleaved(runs: dict, repeats: int, warmup: int) -> dict:
    for _ in range(warmup):
        for r in runs.values():
            r()
    times = {k: [] for k in runs}
    for _ in range(repeats):
        for k, r in runs.items():
            times[k].append(r())
    return {k: statistics.median(v) * 1e3 for k, v in times.items()}


def bench_model(name, model, shape, *, repeats, warmup, tf32):
    import memcc

    variants = {
        "ideal": memcc.compile(model, device="ideal", progress=False),
        "tiled": memcc.compile(model, device="ideal", tile=(128, 128), dac_bits=8, adc_bits=8, progress=False),
    }
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    runs = {"original": BoundRun(cuda_session(model, memcc_ops=False, tf32=tf32), x)}
    for k, v in variants.items():
        runs[k] = BoundRun(cuda_session(v, memcc_ops=True, tf32=tf32), x)
    med = time_interleaved(runs, repeats, warmup)
    ref = runs["original"].output()
    scale = float(np.max(np.abs(ref))) or 1.0
    return {
        "model": name,
        "input_shape": list(shape),
        "original_ms": med["original"],
        "ideal_ms": med["ideal"],
        "tiled_ms": med["tiled"],
        "ideal_ratio": med["ideal"] / med["original"],
        "tiled_ratio": med["tiled"] / med["original"],
        "ideal_max_rel_err": float(np.max(np.abs(runs["ideal"].output() - ref)) / scale),
    }


def layer_model(K: int, N: int, attrs: dict):
    rng = np.random.default_rng(1)
    G = rng.uniform(1e-6, 1e-4, size=(2, K, N)).astype(np.float32)
    node = helper.make_node("MemristiveMatMul", ["x", "G"], ["y"], domain="ai.memcc", weight_scale=5e3, **attrs)
    graph = helper.make_graph(
        [node], "layer", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, K])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, N])], [numpy_helper.from_array(G, "G")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.memcc", 1)])


def bench_layer(M, K, N, *, repeats, warmup, peak):
    x = np.random.default_rng(2).standard_normal((M, K)).astype(np.float32)
    settings = {
        "ideal": {},
        "tiled 8b": dict(tile_shape=[128, 128], dac_bits=8, adc_bits=8),
        "tiled 8b + noise": dict(tile_shape=[128, 128], dac_bits=8, adc_bits=8, read_noise_std=0.05),
    }
    runs = {k: BoundRun(cuda_session(layer_model(K, N, a), memcc_ops=True, tf32=False), x) for k, a in settings.items()}
    med = time_interleaved(runs, repeats, warmup)
    flops = 2.0 * M * K * N
    return [{"setting": k, "ms": t, "tflops": flops / (t * 1e-3) / 1e12,
             "fraction_of_fp32_peak": (flops / (t * 1e-3) / 1e12 / peak) if peak else None} for k, t in med.items()]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="original vs memcc-compiled models in onnxruntime-gpu (CUDA)")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--models", default="cnn,mlp,transformer")
    ap.add_argument("--layer", default="8192x4096x4096", help="MxKxN of the throughput layer")
    ap.add_argument("--peak-tflops", type=float, help="FP32 peak of this GPU (default: by name)")
    ap.add_argument("--tf32", action="store_true", help="let the original model use TF32 tensor cores")
    ap.add_argument("--json", help="also write the results to this JSON file")
    args = ap.parse_args(argv)

    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        print("bench_gpu: error: onnxruntime has no CUDA execution provider (pip install memcc[gpu])", file=sys.stderr)
        return 2
    if hasattr(ort, "preload_dlls"):
        ort.preload_dlls()
    name = gpu_name()
    peak = args.peak_tflops or peak_for(name)
    wanted = {m.strip() for m in args.models.split(",") if m.strip()}
    models, _ = build_models(args.batch)
    rows = []
    for mname, model, shape in models:
        if mname in wanted:
            print(f"timing {mname} ...", file=sys.stderr, flush=True)
            rows.append(bench_model(mname, model, shape, repeats=args.repeats, warmup=args.warmup, tf32=args.tf32))
    M, K, N = (int(v) for v in args.layer.lower().split("x"))
    layer = bench_layer(M, K, N, repeats=args.repeats, warmup=args.warmup, peak=peak)

    print(f"{name}, onnxruntime {ort.__version__}, batch {args.batch}, TF32 {'on' if args.tf32 else 'off'}, "
          f"median of {args.repeats} interleaved runs (ms)")
    print(f"{'model':<12} {'original':>10} {'ideal':>10} {'ratio':>7} {'tiled 8b':>10} {'ratio':>7}")
    for r in rows:
        ok_i = "ok" if r["ideal_ratio"] <= TARGET_IDEAL else "MISS"
        ok_t = "ok" if r["tiled_ratio"] <= TARGET_TILED else "MISS"
        print(f"{r['model']:<12} {r['original_ms']:>10.3f} {r['ideal_ms']:>10.3f} {r['ideal_ratio']:>6.2f}x {ok_i:<4} "
              f"{r['tiled_ms']:>10.3f} {r['tiled_ratio']:>6.2f}x {ok_t:<4}")
    print(f"\none layer {M}x{K}x{N} (FP32 peak {peak if peak else '?'} TFLOP/s)")
    for r in layer:
        frac = f"{100 * r['fraction_of_fp32_peak']:.1f} % of peak" if r["fraction_of_fp32_peak"] else ""
        print(f"  {r['setting']:<18} {r['ms']:>9.3f} ms {r['tflops']:>7.2f} TFLOP/s  {frac}")
    if args.json:
        Path(args.json).write_text(json.dumps({"gpu": name, "onnxruntime": ort.__version__, "batch": args.batch,
                                               "tf32": args.tf32, "models": rows, "layer": layer}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
