"""CPU cost of memcc's simulation: original model vs compiled model in onnxruntime.

    python benchmarks/bench_cpu.py [--threads 2] [--repeats 30] [--batch 64] [--json out.json]

Builds three models here (a CNN, an MLP and a transformer encoder whose projections are MatMuls
with constant weights; PyTorch export when torch is installed, onnx.helper otherwise), compiles
each twice -- ideal mode, and 128x128 tiles with 8-bit DAC and ADC -- and times all three
versions in onnxruntime on the CPU with the same thread count. Runs are interleaved (original,
ideal, tiled, original, ...), in blocks that begin with untimed runs (timing.py: with
--threads > 1 the previous session's pool spins on for tens of ms), so that drift in machine
load hits all versions alike; the median of --repeats runs is reported. Targets: ideal <= 1.3x
the original, tiled <= 2x.

A benchmark, not a test: it asserts nothing about time.
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import platform
import statistics
import sys
import warnings

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from timing import time_interleaved

TARGET_IDEAL = 1.3
TARGET_TILED = 2.0
OPSET = 17


# --------------------------------------------------------------------------------------------
# Models (PyTorch)
# --------------------------------------------------------------------------------------------


def _torch_models(batch: int):
    import torch
    import torch.nn as nn

    torch.manual_seed(0)

    class CNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),    # 32x16x16
                nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),   # 64x8x8
                nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 128x4x4
            )
            self.head = nn.Sequential(nn.Flatten(), nn.Linear(128 * 4 * 4, 256), nn.ReLU(), nn.Linear(256, 10))

        def forward(self, x):
            return self.head(self.features(x))

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(
                nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10)
            )

        def forward(self, x):
            return self.net(x)

    class EncoderLayer(nn.Module):
        # Written out (rather than nn.TransformerEncoderLayer) so that every projection exports
        # as a MatMul against a constant weight, whatever the exporter's fast paths.
        def __init__(self, d: int, heads: int, ffn: int):
            super().__init__()
            self.heads, self.dh = heads, d // heads
            self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
            self.ff1, self.ff2 = nn.Linear(d, ffn), nn.Linear(ffn, d)
            self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)

        def forward(self, x):
            b, t, d = x.shape
            def split(y):
                return y.reshape(b, t, self.heads, self.dh).transpose(1, 2)
            q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
            att = torch.softmax(q @ k.transpose(-1, -2) / self.dh**0.5, dim=-1)
            y = (att @ v).transpose(1, 2).reshape(b, t, d)
            x = self.ln1(x + self.o(y))
            return self.ln2(x + self.ff2(torch.relu(self.ff1(x))))

    class Encoder(nn.Module):
        def __init__(self, d=128, heads=4, ffn=512, layers=2):
            super().__init__()
            self.layers = nn.ModuleList(EncoderLayer(d, heads, ffn) for _ in range(layers))

        def forward(self, x):
            for layer in self.layers:
                x = layer(x)
            return x

    specs = [
        ("cnn", CNN(), (batch, 3, 32, 32)),
        ("mlp", MLP(), (batch, 784)),
        ("transformer", Encoder(), (batch, 32, 128)),
    ]
    out = []
    for name, module, shape in specs:
        module.eval()
        buf = io.BytesIO()
        dummy = torch.randn(*shape)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module, (dummy,), buf, input_names=["x"], output_names=["y"], opset_version=OPSET,
                dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}, dynamo=False,
            )
        out.append((name, onnx.load_from_string(buf.getvalue()), shape))
    return out


# --------------------------------------------------------------------------------------------
# Models (onnx.helper, when torch is not installed)
# --------------------------------------------------------------------------------------------


class _Builder:
    def __init__(self, seed=0):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits, self.n = [], [], 0

    def name(self, p):
        self.n += 1
        return f"{p}{self.n}"

    def const(self, arr, p="c"):
        n = self.name(p)
        self.inits.append(numpy_helper.from_array(np.asarray(arr), n))
        return n

    def weight(self, *shape, fan_in):
        return self.const((self.rng.standard_normal(shape) / np.sqrt(fan_in)).astype(np.float32), "w")

    def op(self, op_type, inputs, **attrs):
        out = self.name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out

    def linear(self, x, k, n):
        return self.op("Add", [self.op("MatMul", [x, self.weight(k, n, fan_in=k)]), self.const(np.zeros(n, np.float32), "b")])

    def model(self, x_shape, y, y_shape, name):
        graph = helper.make_graph(
            self.nodes, name,
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", *x_shape[1:]])],
            [helper.make_tensor_value_info(y, TensorProto.FLOAT, ["batch", *y_shape[1:]])],
            self.inits,
        )
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


def _helper_models(batch: int):
    # CNN
    b = _Builder(0)
    h = "x"
    for cin, cout in ((3, 32), (32, 64), (64, 128)):
        w = b.weight(cout, cin, 3, 3, fan_in=cin * 9)
        h = b.op("Conv", [h, w, b.const(np.zeros(cout, np.float32), "b")], pads=[1, 1, 1, 1])
        h = b.op("MaxPool", [b.op("Relu", [h])], kernel_shape=[2, 2], strides=[2, 2])
    h = b.op("Flatten", [h])
    h = b.op("Relu", [b.op("Gemm", [h, b.weight(2048, 256, fan_in=2048), b.const(np.zeros(256, np.float32))])])
    y = b.op("Gemm", [h, b.weight(256, 10, fan_in=256), b.const(np.zeros(10, np.float32))])
    cnn = b.model((batch, 3, 32, 32), y, (batch, 10), "cnn")
    # MLP
    b = _Builder(1)
    h = b.op("Relu", [b.linear("x", 784, 512)])
    h = b.op("Relu", [b.linear(h, 512, 512)])
    mlp = b.model((batch, 784), b.linear(h, 512, 10), (batch, 10), "mlp")
    # Transformer encoder
    b = _Builder(2)
    d, heads, ffn, t = 128, 4, 512, 32
    dh = d // heads
    shape_split = b.const(np.array([0, 0, heads, dh], np.int64), "s")
    shape_merge = b.const(np.array([0, 0, d], np.int64), "s")
    scale = b.const(np.array(1 / np.sqrt(dh), np.float32), "s")
    x = "x"
    for _ in range(2):
        def split(y):
            return b.op("Transpose", [b.op("Reshape", [y, shape_split])], perm=[0, 2, 1, 3])
        q, k, v = (split(b.linear(x, d, d)) for _ in range(3))
        kt = b.op("Transpose", [k], perm=[0, 1, 3, 2])
        att = b.op("Softmax", [b.op("Mul", [b.op("MatMul", [q, kt]), scale])], axis=-1)
        y = b.op("Reshape", [b.op("Transpose", [b.op("MatMul", [att, v])], perm=[0, 2, 1, 3]), shape_merge])
        ones, zeros = b.const(np.ones(d, np.float32)), b.const(np.zeros(d, np.float32))
        x = b.op("LayerNormalization", [b.op("Add", [x, b.linear(y, d, d)]), ones, zeros], axis=-1)
        f = b.linear(b.op("Relu", [b.linear(x, d, ffn)]), ffn, d)
        x = b.op("LayerNormalization", [b.op("Add", [x, f]), ones, zeros], axis=-1)
    enc = b.model((batch, t, d), x, (batch, t, d), "transformer")
    return [("cnn", cnn, (batch, 3, 32, 32)), ("mlp", mlp, (batch, 784)), ("transformer", enc, (batch, t, d))]


def build_models(batch: int, use_torch: bool = True):
    if use_torch:
        try:
            import torch  # noqa: F401
        except ImportError:
            use_torch = False
    return (_torch_models(batch) if use_torch else _helper_models(batch)), ("torch" if use_torch else "onnx.helper")


# --------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------


def _options(threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return so


def bench_model(name, model, shape, *, threads, repeats, warmup):
    import onnxruntime as ort

    import memcc

    variants = {
        "original": model,
        "ideal": memcc.compile(model, device="ideal", progress=False),
        "tiled": memcc.compile(model, device="ideal", tile=(128, 128), dac_bits=8, adc_bits=8, progress=False),
    }
    sessions = {
        "original": ort.InferenceSession(model.SerializeToString(), sess_options=_options(threads), providers=["CPUExecutionProvider"]),
        "ideal": memcc.session(variants["ideal"], sess_options=_options(threads)),
        "tiled": memcc.session(variants["tiled"], sess_options=_options(threads)),
    }
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    feeds = {k: {s.get_inputs()[0].name: x} for k, s in sessions.items()}
    outputs = {k: s.run(None, feeds[k])[0] for k, s in sessions.items()}
    for _ in range(warmup):
        for k, s in sessions.items():
            s.run(None, feeds[k])
    times = time_interleaved({k: functools.partial(s.run, None, feeds[k]) for k, s in sessions.items()}, repeats,
                             threads)
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    ref = outputs["original"]
    scale = float(np.max(np.abs(ref))) or 1.0
    return {
        "model": name,
        "input_shape": list(shape),
        "memristive_layers": sum(n.op_type == memcc.OP_TYPE for n in variants["ideal"].graph.node),
        "original_ms": med["original"],
        "ideal_ms": med["ideal"],
        "tiled_ms": med["tiled"],
        "ideal_ratio": med["ideal"] / med["original"],
        "tiled_ratio": med["tiled"] / med["original"],
        "ideal_max_rel_err": float(np.max(np.abs(outputs["ideal"] - ref)) / scale),
        "tiled_max_rel_err": float(np.max(np.abs(outputs["tiled"] - ref)) / scale),
        "ideal_ms_all": [t * 1e3 for t in times["ideal"]],
    }


def format_table(rows, threads, batch, repeats) -> str:
    head = f"{'model':<12} {'layers':>6} {'original':>10} {'ideal':>10} {'ratio':>7} {'(<=%.1fx)' % TARGET_IDEAL:>9} " \
           f"{'tiled 8b':>10} {'ratio':>7} {'(<=%.1fx)' % TARGET_TILED:>9} {'ideal err':>10}"
    lines = [
        f"batch {batch}, intra_op_num_threads={threads}, median of {repeats} interleaved runs (ms)",
        head,
        "-" * len(head),
    ]
    for r in rows:
        ok_i = "ok" if r["ideal_ratio"] <= TARGET_IDEAL else "MISS"
        ok_t = "ok" if r["tiled_ratio"] <= TARGET_TILED else "MISS"
        lines.append(
            f"{r['model']:<12} {r['memristive_layers']:>6} {r['original_ms']:>10.3f} {r['ideal_ms']:>10.3f} "
            f"{r['ideal_ratio']:>6.2f}x {ok_i:>9} {r['tiled_ms']:>10.3f} {r['tiled_ratio']:>6.2f}x {ok_t:>9} "
            f"{r['ideal_max_rel_err']:>10.1e}"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="original vs memcc-compiled models in onnxruntime (CPU)")
    ap.add_argument("--threads", type=int, default=2, help="intra_op_num_threads for every session (default 2)")
    ap.add_argument("--repeats", type=int, default=30, help="timed runs per version (median reported)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--models", default="cnn,mlp,transformer", help="comma-separated subset")
    ap.add_argument("--no-torch", action="store_true", help="build the models with onnx.helper")
    ap.add_argument("--json", help="also write the results to this JSON file")
    args = ap.parse_args(argv)

    import onnxruntime as ort

    import memcc
    from memcc.errors import MemccError

    try:
        memcc.library_path()
    except MemccError as exc:
        print(f"bench_cpu: error: {exc}", file=sys.stderr)
        return 2

    wanted = [m.strip() for m in args.models.split(",") if m.strip()]
    models, builder = build_models(args.batch, use_torch=not args.no_torch)
    rows = []
    for name, model, shape in models:
        if name not in wanted:
            continue
        print(f"timing {name} ...", file=sys.stderr, flush=True)
        rows.append(bench_model(name, model, shape, threads=args.threads, repeats=args.repeats, warmup=args.warmup))
    print(format_table(rows, args.threads, args.batch, args.repeats))
    if args.json:
        payload = {
            "threads": args.threads,
            "batch": args.batch,
            "repeats": args.repeats,
            "models_built_with": builder,
            "onnxruntime": ort.__version__,
            "memcc": memcc.__version__,
            "machine": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "targets": {"ideal_ratio": TARGET_IDEAL, "tiled_ratio": TARGET_TILED},
            "results": rows,
        }
        with open(args.json, "w") as f:
            json.dump(payload, f, indent=2)
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
