"""Accuracy of the digits CNN before and after memcc, side by side (what `make demo` prints).

    python examples/evaluate.py [ORIGINAL.onnx] [LABEL=COMPILED.onnx ...] [--test digits_test.npz]

Runs the original model (plain onnxruntime; default examples/digits_cnn.onnx) and every compiled
model given as LABEL=PATH (memcc's op library) on the test split in examples/digits_test.npz,
and prints one table. With no compiled model given it compiles a default set here: ideal
devices; ideal devices on 128x128 tiles with 8-bit DAC/ADC; VTEAM devices with their default
device-to-device variability, programmed pulse by pulse; and the same on 128x128 tiles with
8-bit DAC/ADC.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

#: label -> memcc.compile keyword arguments, used when no compiled model is given.
DEFAULT_SET = {
    "memcc ideal": dict(device="ideal"),
    "memcc ideal, 128x128 tiles, 8-bit DAC/ADC": dict(device="ideal", tile=(128, 128), dac_bits=8, adc_bits=8),
    "memcc vteam (10% d2d, programmed)": dict(device="vteam"),
    "memcc vteam, 128x128 tiles, 8-bit DAC/ADC": dict(device="vteam", tile=(128, 128), dac_bits=8, adc_bits=8),
}


def accuracy(sess, x: np.ndarray, y: np.ndarray, batch: int = 128) -> float:
    name = sess.get_inputs()[0].name
    preds = []
    for start in range(0, len(x), batch):
        logits = sess.run(None, {name: x[start : start + batch]})[0]
        preds.append(np.argmax(logits, axis=1))
    return float((np.concatenate(preds) == y).mean())


def _labelled(spec: str) -> tuple[str, str]:
    label, sep, path = spec.partition("=")
    if not sep or not label or not path:
        raise argparse.ArgumentTypeError(f"expected LABEL=PATH, got {spec!r}")
    return label, path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="original vs memcc accuracy on the digits test split")
    ap.add_argument("model", nargs="?", default=str(HERE / "digits_cnn.onnx"), help="original model")
    ap.add_argument("compiled", nargs="*", type=_labelled, help="LABEL=PATH of compiled models")
    ap.add_argument("--test", default=str(HERE / "digits_test.npz"), help="test split (.npz with x, y)")
    ap.add_argument("--seed", type=int, default=0, help="device seed for the models compiled here")
    args = ap.parse_args(argv)

    import onnxruntime as ort

    import memcc
    from memcc.io import load_model

    data = np.load(args.test)
    x, y = data["x"].astype(np.float32), data["y"]
    original = load_model(args.model)
    plain = ort.InferenceSession(original.SerializeToString(), providers=["CPUExecutionProvider"])
    rows = [("original (onnxruntime)", accuracy(plain, x, y))]
    if args.compiled:
        models = [(label, load_model(path)) for label, path in args.compiled]
    else:
        models = [(label, memcc.compile(original, seed=args.seed, progress=False, **kw)) for label, kw in DEFAULT_SET.items()]
    rows += [(label, accuracy(memcc.session(m), x, y)) for label, m in models]

    width = max(len(label) for label, _ in rows)
    print(f"accuracy on {len(y)} held-out digits (scikit-learn's digits, 8x8 images):")
    for label, acc in rows:
        delta = "" if label == rows[0][0] else f"  ({(acc - rows[0][1]) * 100:+.2f} points)"
        print(f"  {label:<{width}}  {acc:7.2%}{delta}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as exc:  # memcc errors read as one line
        from memcc.errors import MemccError

        if isinstance(exc, MemccError):
            print(f"evaluate: error: {exc}", file=sys.stderr)
            sys.exit(2)
        raise
