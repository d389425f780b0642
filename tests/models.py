"""Small test models: PyTorch / scikit-learn exports and hand-built ONNX graphs.

Every builder is deterministic (fixed seeds). The PyTorch builders write into a folder given by the
caller (pytest's tmp_path) and return the path with example inputs.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

FLOAT = TensorProto.FLOAT


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def randn(gen, *shape, scale=1.0) -> np.ndarray:
    return (gen.standard_normal(shape) * scale).astype(np.float32)


def init(array, name) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(array), name)


def vinfo(name, shape, elem=FLOAT):
    """A tensor value info; `shape` may be an int: that rank with unknown sizes."""
    if isinstance(shape, int):
        shape = [None] * shape
    return helper.make_tensor_value_info(name, elem, shape)


def make_model(nodes, inputs, outputs, initializers=(), opset=17, ir_version=None, name="g"):
    if ir_version is None:
        ir_version = 3 if opset <= 8 else (5 if opset <= 10 else None)
    if ir_version is not None and ir_version < 4:  # initializers must be graph inputs too
        declared = {i.name for i in inputs}
        inputs = list(inputs) + [vinfo(t.name, list(t.dims), t.data_type)
                                 for t in initializers if t.name not in declared]
    graph = helper.make_graph(nodes, name, inputs, outputs, list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    if ir_version is not None:
        model.ir_version = ir_version
    else:
        model.ir_version = min(model.ir_version, 8)
    onnx.checker.check_model(model)
    return model


# --------------------------------------------------------------------------------------------
# PyTorch
# --------------------------------------------------------------------------------------------


def export_torch(module, args, path: Path, *, opset: int = 13, **kwargs) -> Path:
    """torch.onnx.export with the TorchScript exporter (fast), falling back to the new one."""
    import torch

    module.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(module, args, str(path), dynamo=False, opset_version=opset,
                              input_names=["x"], output_names=["y"], **kwargs)
        except TypeError:  # an exporter without the `dynamo` switch
            torch.onnx.export(module, args, str(path), opset_version=opset,
                              input_names=["x"], output_names=["y"], **kwargs)
    return path


def torch_cnn(folder: Path, *, fold_in_exporter: bool = False):
    """Conv + BatchNorm + ReLU + MaxPool + Linear; BN kept in the graph (no exporter folding)."""
    import torch

    class CNN(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(2, 6, 3, padding=1)
            self.bn = torch.nn.BatchNorm2d(6)
            self.conv2 = torch.nn.Conv2d(6, 6, 3, padding=1, groups=3, bias=False)
            self.fc = torch.nn.Linear(6 * 4 * 4, 5)

        def forward(self, x):
            x = torch.relu(self.bn(self.conv(x)))
            x = torch.nn.functional.max_pool2d(x, 2)
            x = torch.relu(self.conv2(x))
            return self.fc(x.flatten(1))

    torch.manual_seed(0)
    m = CNN()
    with torch.no_grad():  # non-trivial BN statistics
        m.bn.running_mean.uniform_(-0.5, 0.5)
        m.bn.running_var.uniform_(0.5, 2.0)
        m.bn.weight.uniform_(0.5, 1.5)
        m.bn.bias.uniform_(-0.5, 0.5)
    x = torch.randn(3, 2, 8, 8)
    path = export_torch(m, (x,), Path(folder) / "cnn.onnx", do_constant_folding=fold_in_exporter)
    return path, {"x": x.numpy()}


def torch_mlp(folder: Path):
    import torch

    torch.manual_seed(1)
    m = torch.nn.Sequential(
        torch.nn.Linear(20, 32), torch.nn.ReLU(), torch.nn.Linear(32, 16), torch.nn.Tanh(),
        torch.nn.Linear(16, 4, bias=False),
    )
    x = torch.randn(7, 20)
    path = export_torch(m, (x,), Path(folder) / "mlp.onnx")
    return path, {"x": x.numpy()}


def torch_transformer(folder: Path):
    """A one-layer transformer encoder (hand-written attention, so it exports to plain MatMuls).

    Its four projections and two feed-forward layers are MatMul with constant weights (3-D
    activations); Q·Kᵀ and P·V are MatMuls of two activations.
    """
    import torch

    class Encoder(torch.nn.Module):
        def __init__(self, d=16, heads=2, ff=32):
            super().__init__()
            self.h, self.d = heads, d
            self.q = torch.nn.Linear(d, d)
            self.k = torch.nn.Linear(d, d)
            self.v = torch.nn.Linear(d, d)
            self.o = torch.nn.Linear(d, d)
            self.ln1 = torch.nn.LayerNorm(d)
            self.ln2 = torch.nn.LayerNorm(d)
            self.ff1 = torch.nn.Linear(d, ff)
            self.ff2 = torch.nn.Linear(ff, d)

        def split(self, t):
            b, s, _ = t.shape
            return t.reshape(b, s, self.h, self.d // self.h).transpose(1, 2)

        def forward(self, x):
            b, s, _ = x.shape
            q, k, v = self.split(self.q(x)), self.split(self.k(x)), self.split(self.v(x))
            att = torch.softmax(q @ k.transpose(-1, -2) / (self.d // self.h) ** 0.5, dim=-1)
            a = (att @ v).transpose(1, 2).reshape(b, s, self.d)
            x = self.ln1(x + self.o(a))
            return self.ln2(x + self.ff2(torch.relu(self.ff1(x))))

    torch.manual_seed(2)
    m = Encoder()
    x = torch.randn(2, 5, 16)
    path = export_torch(m, (x,), Path(folder) / "encoder.onnx", opset=14)
    return path, {"x": x.numpy()}


# --------------------------------------------------------------------------------------------
# scikit-learn
# --------------------------------------------------------------------------------------------


def sklearn_mlp():
    """MLPClassifier on sklearn's digits, converted with skl2onnx; returns (model, inputs)."""
    from skl2onnx import to_onnx
    from sklearn.datasets import load_digits
    from sklearn.neural_network import MLPClassifier

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = MLPClassifier(hidden_layer_sizes=(24,), max_iter=60, random_state=0).fit(X[:600], y[:600])
    model = to_onnx(clf, X[:1], options={id(clf): {"zipmap": False}}, target_opset=15)
    return model, {"X": X[600:640]}


# --------------------------------------------------------------------------------------------
# Hand-built graphs
# --------------------------------------------------------------------------------------------


def constant_weights_model(opset: int = 17):
    """MatMul + Add + Gemm whose weights are Constant nodes (value, value_floats forms)."""
    g = rng(3)
    W1, W2 = randn(g, 6, 5), randn(g, 5, 3)
    nodes = [
        helper.make_node("Constant", [], ["W1"], value=init(W1, "W1")),
        helper.make_node("Constant", [], ["b1"], value_floats=[0.1, -0.2, 0.3, 0.0, 0.5]),
        helper.make_node("MatMul", ["x", "W1"], ["h"]),
        helper.make_node("Add", ["h", "b1"], ["h2"]),
        helper.make_node("Relu", ["h2"], ["r"]),
        helper.make_node("Constant", [], ["W2"], value=init(W2, "W2")),
        helper.make_node("Identity", ["W2"], ["W2_id"]),
        helper.make_node("Constant", [], ["c"], value_float=0.25),
        helper.make_node("Gemm", ["r", "W2_id", "c"], ["y"], alpha=0.5),
    ]
    model = make_model(nodes, [vinfo("x", [4, 6])], [vinfo("y", [4, 3])], opset=opset)
    return model, {"x": randn(g, 4, 6)}


def gemm_model(*, trans_a=0, trans_b=0, alpha=1.0, beta=1.0, c="vector", opset=17, M=4, K=6, N=3):
    """One Gemm. c: None, "scalar", "one", "vector", "row", "matrix", "column", "input"."""
    g = rng(4)
    A_shape = [K, M] if trans_a else [M, K]
    B = randn(g, N, K) if trans_b else randn(g, K, N)
    inits = [init(B, "B")]
    inputs = [vinfo("A", A_shape)]
    feeds = {"A": randn(g, *A_shape)}
    c_shapes = {"scalar": [], "one": [1], "vector": [N], "row": [1, N], "matrix": [M, N],
                "column": [M, 1], "input": [N]}
    node_inputs = ["A", "B"]
    if c is not None:
        shape = c_shapes[c]
        value = randn(g, *shape) if shape else np.array(g.standard_normal(), dtype=np.float32)
        if c == "input":
            inputs.append(vinfo("C", shape))
            feeds["C"] = value
        else:
            inits.append(init(value, "C"))
        node_inputs.append("C")
    elif opset < 11:
        raise ValueError("C is required before opset 11")
    attrs = dict(transA=trans_a, transB=trans_b, alpha=alpha, beta=beta)
    node = helper.make_node("Gemm", node_inputs, ["Y"], name="gemm", **attrs)
    model = make_model([node], inputs, [vinfo("Y", [M, N])], inits, opset=opset)
    return model, feeds


def conv_model(*, dims=2, C=4, N=6, group=1, kernel=3, strides=None, pads=None, dilations=None,
               auto_pad=None, bias=True, size=7, batch=2, opset=17, seed=5):
    g = rng(seed)
    ks = [kernel] * dims if isinstance(kernel, int) else list(kernel)
    W = randn(g, N, C // group, *ks)
    inits = [init(W, "W")]
    ins = ["X", "W"]
    if bias:
        inits.append(init(randn(g, N), "B"))
        ins.append("B")
    attrs = {"group": group}
    for k, v in (("strides", strides), ("pads", pads), ("dilations", dilations), ("auto_pad", auto_pad)):
        if v is not None:
            attrs[k] = v
    sizes = [size] * dims if isinstance(size, int) else list(size)
    x_shape = [batch, C] + sizes
    node = helper.make_node("Conv", ins, ["Y"], name="conv", **attrs)
    graph = helper.make_graph([node], "g", [vinfo("X", x_shape)], [vinfo("Y", dims + 2)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = min(model.ir_version, 8)
    onnx.checker.check_model(model)
    return model, {"X": randn(g, *x_shape)}


def nothing_to_map_model():
    """Only digital ops and a MatMul of two activations."""
    nodes = [
        helper.make_node("MatMul", ["a", "b"], ["m"], name="attn"),
        helper.make_node("Relu", ["m"], ["y"]),
    ]
    return make_model(nodes, [vinfo("a", [2, 3]), vinfo("b", [3, 4])], [vinfo("y", [2, 4])])


def old_opset_model(opset: int = 9):
    """Conv + BatchNormalization(spatial) + Flatten + Gemm(C required) in an old opset (IR 3/4)."""
    g = rng(6)
    bn_attrs = {"epsilon": 1e-3}
    if opset < 9:
        bn_attrs["spatial"] = 1
    nodes = [
        helper.make_node("Conv", ["x", "W", "b"], ["c"], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "s", "bb", "m", "v"], ["bn"], name="bn", **bn_attrs),
        helper.make_node("Relu", ["bn"], ["r"]),
        helper.make_node("Flatten", ["r"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "W2", "C"], ["y"], name="fc", transB=1, beta=0.5),
    ]
    inits = [
        init(randn(g, 4, 2, 3, 3), "W"), init(randn(g, 4), "b"),
        init(g.uniform(0.5, 1.5, 4).astype(np.float32), "s"), init(randn(g, 4), "bb"),
        init(randn(g, 4, scale=0.3), "m"), init(g.uniform(0.5, 2, 4).astype(np.float32), "v"),
        init(randn(g, 3, 4 * 5 * 5), "W2"), init(randn(g, 3), "C"),
    ]
    inputs = [vinfo("x", [2, 2, 5, 5])]
    ir = 3 if opset <= 8 else 4
    model = make_model(nodes, inputs, [vinfo("y", [2, 3])], inits, opset=opset, ir_version=ir)
    return model, {"x": randn(g, 2, 2, 5, 5)}


def batchnorm_gemm_model(opset: int = 15):
    """Gemm (transB, C [N]) followed by BatchNormalization: folded into the Gemm."""
    g = rng(7)
    nodes = [
        helper.make_node("Gemm", ["x", "W", "C"], ["h"], name="fc", transB=1, alpha=2.0, beta=0.5),
        helper.make_node("BatchNormalization", ["h", "s", "bb", "m", "v"], ["y"], name="bn"),
    ]
    inits = [
        init(randn(g, 4, 6), "W"), init(randn(g, 4), "C"),
        init(g.uniform(0.5, 1.5, 4).astype(np.float32), "s"), init(randn(g, 4), "bb"),
        init(randn(g, 4), "m"), init(g.uniform(0.5, 2, 4).astype(np.float32), "v"),
    ]
    model = make_model(nodes, [vinfo("x", [3, 6])], [vinfo("y", [3, 4])], inits, opset=opset)
    return model, {"x": randn(g, 3, 6)}
