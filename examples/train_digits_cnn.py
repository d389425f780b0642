"""Train a small CNN on scikit-learn's digits and export it to ONNX for the memcc demo.

    python examples/train_digits_cnn.py

writes, next to this script:
- digits_cnn.onnx  the trained model (input "image" [batch, 1, 8, 8] float32 in [0, 1],
                   output "logits" [batch, 10]; opset 17, dynamic batch axis)
- digits_test.npz  the held-out test split: x [n, 1, 8, 8] float32, y [n] int64

Everything is seeded and runs single-threaded, so a rerun gives the same split and, on the same
machine and library versions, the same weights. Takes a few seconds on two CPU cores.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SEED = 0
TEST_FRACTION = 0.2  # 360 of the 1797 digits
EPOCHS = 30
BATCH = 32
OPSET = 17


def load_split():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None, :, :]  # [n, 1, 8, 8] in [0, 1]
    y = digits.target.astype(np.int64)
    return train_test_split(x, y, test_size=TEST_FRACTION, random_state=SEED, stratify=y)


def build_model():
    import torch.nn as nn

    return nn.Sequential(
        nn.Conv2d(1, 16, kernel_size=3, padding=1),   # 16 x 8 x 8
        nn.ReLU(),
        nn.MaxPool2d(2),                               # 16 x 4 x 4
        nn.Conv2d(16, 32, kernel_size=3, padding=1),   # 32 x 4 x 4
        nn.ReLU(),
        nn.MaxPool2d(2),                               # 32 x 2 x 2
        nn.Flatten(),
        nn.Linear(32 * 2 * 2, 64),
        nn.ReLU(),
        nn.Linear(64, 10),
    )


def train(model, x_train, y_train, epochs: int = EPOCHS):
    import torch

    g = torch.Generator().manual_seed(SEED)
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(xt), generator=g)
        total = 0.0
        for start in range(0, len(xt), BATCH):
            idx = order[start : start + BATCH]
            opt.zero_grad()
            loss = loss_fn(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        if (epoch + 1) % 10 == 0:
            print(f"epoch {epoch + 1:3d}  loss {total / len(xt):.4f}")
    model.eval()
    return model


def export(model, path: Path) -> None:
    import warnings

    import torch

    dummy = torch.zeros(2, 1, 8, 8)
    names = dict(input_names=["image"], output_names=["logits"], opset_version=OPSET)
    try:
        # The TorchScript exporter writes a compact, self-contained file at exactly OPSET.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(
                model, (dummy,), str(path), dynamo=False,
                dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}}, **names,
            )
    except Exception:  # a torch without the TorchScript exporter: use torch.export
        batch = torch.export.Dim("batch", min=1)
        torch.onnx.export(
            model, (dummy,), str(path), dynamo=True, external_data=False,
            dynamic_shapes=({0: batch},), **names,
        )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out-dir", default=str(HERE), help="where to write the .onnx and .npz")
    ap.add_argument("--epochs", type=int, default=EPOCHS)
    args = ap.parse_args(argv)

    import onnx
    import torch

    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    x_train, x_test, y_train, y_test = load_split()
    model = train(build_model(), x_train, y_train, args.epochs)
    with torch.no_grad():
        acc = float((model(torch.from_numpy(x_test)).argmax(1).numpy() == y_test).mean())
    print(f"test accuracy (PyTorch): {acc:.2%} on {len(y_test)} digits")

    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = out_dir / "digits_cnn.onnx"
    export(model, onnx_path)
    m = onnx.load(str(onnx_path))
    onnx.checker.check_model(m)
    # Drop the exporter's version stamp so reruns with another torch patch release differ less.
    m.producer_version = ""
    onnx.save(m, str(onnx_path))
    np.savez_compressed(out_dir / "digits_test.npz", x=x_test, y=y_test)
    print(f"wrote {onnx_path} ({os.path.getsize(onnx_path) / 1024:.1f} KB) and "
          f"{out_dir / 'digits_test.npz'} ({len(y_test)} samples)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
