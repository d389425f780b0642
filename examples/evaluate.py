"""Accuracy of the digits CNN before and after memcc, side by side (what `make demo` prints).

    python examples/evaluate.py [ORIGINAL.onnx [IDEAL.onnx [TILED.onnx]]] [--test digits_test.npz]

Runs, on the test split in examples/digits_test.npz:
- the original model (plain onnxruntime; default examples/digits_cnn.onnx),
- memcc in ideal mode: IDEAL.onnx, e.g. made by
  `memcc compile examples/digits_cnn.onnx --device ideal -o out/digits_mem_ideal.onnx`
  (compiled here when not given),
- memcc with 128x128 crossbar tiles and 8-bit DAC/ADC: TILED.onnx, e.g. made by
  `memcc compile ... --tile 128x128 --dac-bits 8 --adc-bits 8` (compiled here when not given).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def accuracy(sess, x: np.ndarray, y: np.ndarray, batch: int = 128) -> float:
    name = sess.get_inputs()[0].name
    preds = []
    for start in range(0, len(x), batch):
        logits = sess.run(None, {name: x[start : start + batch]})[0]
        preds.append(np.argmax(logits, axis=1))
    return float((np.concatenate(preds) == y).mean())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="original vs memcc accuracy on the digits test split")
    ap.add_argument("model", nargs="?", default=str(HERE / "digits_cnn.onnx"), help="original model")
    ap.add_argument("ideal", nargs="?", help="compiled ideal-mode model (default: compile here)")
    ap.add_argument("tiled", nargs="?", help="compiled 128x128-tile 8-bit model (default: compile here)")
    ap.add_argument("--test", default=str(HERE / "digits_test.npz"), help="test split (.npz with x, y)")
    args = ap.parse_args(argv)

    import onnxruntime as ort

    import memcc
    from memcc.io import load_model

    data = np.load(args.test)
    x, y = data["x"].astype(np.float32), data["y"]

    original = load_model(args.model)
    plain = ort.InferenceSession(original.SerializeToString(), providers=["CPUExecutionProvider"])
    base = accuracy(plain, x, y)

    ideal = load_model(args.ideal) if args.ideal else memcc.compile(original, device="ideal", progress=False)
    acc_ideal = accuracy(memcc.session(ideal), x, y)

    tiled = (
        load_model(args.tiled)
        if args.tiled
        else memcc.compile(original, device="ideal", tile=(128, 128), dac_bits=8, adc_bits=8, progress=False)
    )
    acc_tiled = accuracy(memcc.session(tiled), x, y)

    print(
        f"original accuracy {base:.2%}  memcc(ideal) {acc_ideal:.2%}  "
        f"memcc(128x128 tiles, 8-bit DAC/ADC) {acc_tiled:.2%}   ({len(y)} test digits)"
    )
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
