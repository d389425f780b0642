"""Train a small VGG-style CNN on Fashion-MNIST with PyTorch and export it to ONNX.

    python examples/train_fmnist_vgg.py [--epochs 2] [--out-dir examples/out]

Data: the full real split from Debian's package `dataset-fashion-mnist` (60,000 training and
10,000 test images), read with `memcc.datasets` so that training and `memcc sweep --data fmnist`
see the same inputs: [batch, 1, 28, 28] float32, pixel/255 in [0, 1].

Network (VGG-style, 3x3 convolutions in pairs, ~0.45 M weights):

    [conv3x3-32, ReLU, conv3x3-32, ReLU, maxpool2]     28x28 -> 14x14
    [conv3x3-64, ReLU, conv3x3-64, ReLU, maxpool2]     14x14 -> 7x7
    fc-128, ReLU, fc-10 (logits)

No batch normalisation (it would be folded into the convolutions by memcc anyway) and no dropout:
two epochs of Adam are enough for ~90 % test accuracy. Seeded, 2 CPU threads
(`torch.set_num_threads(2)`); a few minutes on two cores.

Writes `<out-dir>/fmnist_vgg.onnx` (input "image" [batch, 1, 28, 28], output "logits"
[batch, 10]; opset 17, dynamic batch) and prints the test accuracy. The weights are not kept in
the repository: rerun this script (examples/reproduce_memtorch_fig7.py does when the file is
missing).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SEED = 0
EPOCHS = 2
BATCH = 128
LR = 2e-3
OPSET = 17


def build_model():
    import torch.nn as nn

    def block(c_in, c_out):
        return [
            nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(),
            nn.Conv2d(c_out, c_out, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2),
        ]

    return nn.Sequential(
        *block(1, 32),                 # 32 x 14 x 14
        *block(32, 64),                # 64 x 7 x 7
        nn.Flatten(),
        nn.Linear(64 * 7 * 7, 128), nn.ReLU(),
        nn.Linear(128, 10),
    )


def train(model, x, y, epochs: int):
    import torch

    g = torch.Generator().manual_seed(SEED)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    steps = epochs * ((len(xt) + BATCH - 1) // BATCH)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=LR, total_steps=steps)
    loss_fn = torch.nn.CrossEntropyLoss()
    model.train()
    t0 = time.perf_counter()
    for epoch in range(epochs):
        order = torch.randperm(len(xt), generator=g)
        total, correct = 0.0, 0
        for start in range(0, len(xt), BATCH):
            idx = order[start : start + BATCH]
            opt.zero_grad()
            out = model(xt[idx])
            loss = loss_fn(out, yt[idx])
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
            correct += int((out.argmax(1) == yt[idx]).sum())
        print(f"epoch {epoch + 1}/{epochs}  loss {total / len(xt):.4f}  train accuracy "
              f"{correct / len(xt):.2%}  ({time.perf_counter() - t0:.0f} s)", flush=True)
    model.eval()
    return model


def evaluate(model, x, y, batch: int = 1000) -> float:
    import torch

    with torch.no_grad():
        preds = [model(torch.from_numpy(x[i : i + batch])).argmax(1).numpy() for i in range(0, len(x), batch)]
    return float((np.concatenate(preds) == y).mean())


def export(model, path: Path) -> None:
    import warnings

    import onnx
    import torch

    dummy = torch.zeros(2, 1, 28, 28)
    names = dict(input_names=["image"], output_names=["logits"], opset_version=OPSET)
    try:  # the TorchScript exporter writes a compact, self-contained file at exactly OPSET
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (dummy,), str(path), dynamo=False,
                              dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}}, **names)
    except Exception:  # a torch without the TorchScript exporter: use torch.export
        batch = torch.export.Dim("batch", min=1)
        torch.onnx.export(model, (dummy,), str(path), dynamo=True, external_data=False,
                          dynamic_shapes=({0: batch},), **names)
    m = onnx.load(str(path))
    onnx.checker.check_model(m)
    m.producer_version = ""
    onnx.save(m, str(path))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out-dir", default=str(HERE / "out"), help="where to write fmnist_vgg.onnx")
    ap.add_argument("--epochs", type=int, default=EPOCHS)
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    args = ap.parse_args(argv)

    import torch

    from memcc.datasets import load_dataset

    torch.manual_seed(SEED)
    torch.set_num_threads(args.threads)
    train_set, test_set = load_dataset("fmnist", split="train"), load_dataset("fmnist", split="test")
    x_train, x_test = train_set.x[:, None], test_set.x[:, None]  # NCHW
    print(f"training on {len(train_set):,} Fashion-MNIST images, testing on {len(test_set):,}", flush=True)
    model = train(build_model(), x_train, train_set.y, args.epochs)
    acc = evaluate(model, x_test, test_set.y)
    print(f"test accuracy (PyTorch): {acc:.2%} on {len(test_set):,} images")

    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "fmnist_vgg.onnx"
    export(model, path)
    print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
