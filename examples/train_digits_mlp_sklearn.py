"""Train a scikit-learn MLP on the digits and export it to ONNX with skl2onnx (a model from
another framework than PyTorch, for `memcc sweep`).

    python examples/train_digits_mlp_sklearn.py [--out-dir examples/out]

Data: scikit-learn's digits with the split of examples/train_digits_cnn.py (memcc.datasets:
`train_test_split(test_size=0.2, random_state=0, stratify=y)`; 1,437 training and 360 test
digits), features = the 64 pixels / 16, in [0, 1] — what `memcc sweep --data digits` feeds a
model whose input is [batch, 64].

Model: `MLPClassifier(hidden_layer_sizes=(64,), max_iter=500, random_state=0)` (ReLU, Adam).
Converted with skl2onnx, ZipMap disabled so the outputs are "label" (int64 [batch]) and
"probabilities" (float32 [batch, 10]); `memcc sweep` takes the argmax of the float output.
The hidden and output layers become MatMul + Add nodes with constant weights, which memcc maps
onto crossbars.

Writes `<out-dir>/digits_mlp_sklearn.onnx` (input "input" [batch, 64] float32) and prints the
test accuracy of scikit-learn and of the ONNX model. Deterministic; takes a few seconds.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SEED = 0
HIDDEN = (64,)
OPSET = 17


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out-dir", default=str(HERE / "out"), help="where to write digits_mlp_sklearn.onnx")
    args = ap.parse_args(argv)

    import onnx
    import onnxruntime as ort
    from skl2onnx import to_onnx
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    from memcc.datasets import digits_split

    x_train, x_test, y_train, y_test = digits_split()
    x_train = x_train.reshape(len(x_train), -1)
    x_test = x_test.reshape(len(x_test), -1)
    clf = MLPClassifier(hidden_layer_sizes=HIDDEN, max_iter=500, random_state=SEED)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(x_train, y_train)
    acc = float((clf.predict(x_test) == y_test).mean())
    print(f"test accuracy (scikit-learn): {acc:.2%} on {len(y_test)} digits")

    onx = to_onnx(clf, x_train[:1].astype(np.float32), options={id(clf): {"zipmap": False}},
                  target_opset={"": OPSET, "ai.onnx.ml": 3})
    _rename_input(onx, "input")
    onnx.checker.check_model(onx)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "digits_mlp_sklearn.onnx"
    onnx.save(onx, str(path))

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outs = sess.run(None, {"input": x_test})
    names = [o.name for o in sess.get_outputs()]
    probs = outs[names.index("probabilities")]
    onnx_acc = float((probs.argmax(1) == y_test).mean())
    print(f"test accuracy (ONNX, onnxruntime): {onnx_acc:.2%}; outputs: {', '.join(names)}")
    print(f"wrote {path} ({path.stat().st_size / 1024:.1f} KB)")
    return 0


def _rename_input(model, new: str) -> None:
    old = model.graph.input[0].name
    model.graph.input[0].name = new
    for node in model.graph.node:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new


if __name__ == "__main__":
    sys.exit(main())
