"""Reproduce the three studies of the MemTorch paper's Fig. 7 with `memcc sweep`.

    python examples/reproduce_memtorch_fig7.py [--jobs 2] [--limit N] [--out docs/results]

Accuracy of two models on memristive crossbars against

1. device-to-device variation (relative std of R_on and R_off across devices),
2. the number of finite conductance states per device,
3. the window R_off/R_on (R_on fixed at the device's 50 ohm),

each over 3 seeds, on real held-out test sets:

- `fmnist_vgg`: a VGG-style CNN trained with PyTorch (examples/train_fmnist_vgg.py) on the
  full Fashion-MNIST training split, evaluated on the full 10,000-image test split (Debian's
  dataset-fashion-mnist);
- `digits_mlp`: a scikit-learn MLPClassifier exported with skl2onnx
  (examples/train_digits_mlp_sklearn.py), on the 360 held-out digits.

The models are trained first when examples/out/ lacks them. Setup shared by every study
(`COMMON`): VTEAM devices (MemTorch's defaults, R_on 50 ohm, R_off 1 kohm), the double-column
mapping of the paper's eq. 1, naive (closed-loop SET/RESET pulse) programming with 5 % tolerance
and 200 pulses, no tiling and continuous DAC/ADC so that the non-ideality under study is the
only other loss. Device-to-device variation is VTEAM's default 10 % where it is not the axis.
The d2d study has a second line with a narrow window (R_off/R_on = 3, R_off 150 ohm) and the ratio
study one with no variation: with identical devices the differential mapping cancels the
window (see docs/memtorch-fig7.md).

Writes `<out>/<model>_<study>.csv` and `.png` and `<out>/fig7.md` (the tables). About 5 minutes
on two cores (`--limit` makes it quicker, for a check).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

COMMON = {"device": "vteam", "programming": "naive"}
SEEDS = [0, 1, 2]

MODELS = {
    "fmnist_vgg": {
        "path": HERE / "out" / "fmnist_vgg.onnx",
        "train": HERE / "train_fmnist_vgg.py",
        "data": "fmnist",
        "title": "VGG-style CNN (PyTorch), Fashion-MNIST test set",
    },
    "digits_mlp": {
        "path": HERE / "out" / "digits_mlp_sklearn.onnx",
        "train": HERE / "train_digits_mlp_sklearn.py",
        "data": "digits",
        "title": "scikit-learn MLP (skl2onnx), digits test split",
    },
}

STUDIES = {
    "d2d": {
        "vary": {"d2d-std": [0, 0.05, 0.1, 0.2, 0.3], "ratio": [20, 3]},
        "fixed": {},
        "what": "d2d variation (R_off/R_on 20 and 3)",
    },
    "states": {
        "vary": {"n-states": [2, 4, 8, 16, 32, 64]},
        "fixed": {},
        "what": "finite conductance states (d2d 10 %)",
    },
    "ratio": {
        "vary": {"ratio": [1.5, 2, 3, 5, 10, 20, 100], "d2d-std": [0.1, 0]},
        "fixed": {},
        "what": "R_off/R_on ratio (d2d 10 % and 0)",
    },
}


def ensure_model(name: str) -> Path:
    spec = MODELS[name]
    if not spec["path"].is_file():
        print(f"{spec['path']} is missing: training it with {spec['train'].name}", flush=True)
        subprocess.run([sys.executable, str(spec["train"]), "--out-dir", str(spec["path"].parent)], check=True)
    return spec["path"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "results"), help="folder for the CSVs, PNGs and fig7.md")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    ap.add_argument("--limit", type=int, help="evaluate on the first N test samples only (a quick check)")
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated subset of: " + ", ".join(MODELS))
    ap.add_argument("--studies", default=",".join(STUDIES), help="comma-separated subset of: " + ", ".join(STUDIES))
    args = ap.parse_args(argv)

    from memcc.sweep import run_sweep

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    studies = [s.strip() for s in args.studies.split(",") if s.strip()]
    for m in models:
        if m not in MODELS:
            ap.error(f"unknown model {m!r}")
    for s in studies:
        if s not in STUDIES:
            ap.error(f"unknown study {s!r}")

    t_all = time.perf_counter()
    sections = []
    for m in models:
        path = ensure_model(m)
        for s in studies:
            study = STUDIES[s]
            t0 = time.perf_counter()
            print(f"== {m}: {study['what']}", flush=True)
            result = run_sweep(path, MODELS[m]["data"], study["vary"], seeds=SEEDS,
                               fixed={**COMMON, **study["fixed"]}, limit=args.limit, jobs=args.jobs)
            stem = out / f"{m}_{s}"
            result.write_csv(stem.with_suffix(".csv"))
            n = result.baseline["n_samples"]
            title = (f"{MODELS[m]['title']} ({n:,} images)\n"
                     f"VTEAM, naive programming, {len(SEEDS)} seeds: {study['what']}")
            result.plot(stem.with_suffix(".png"), title=title)
            seconds = time.perf_counter() - t0
            print(result.summary(), flush=True)
            print(f"({len(result.rows)} points in {seconds:.0f} s)\n", flush=True)
            sections.append(
                f"### {m}: {study['what']}\n\n"
                f"![{m} {s}]({stem.name}.png)\n\n"
                f"{result.markdown()}\n\n"
                f"{len(result.rows)} points, {n:,} test samples each, {seconds:.0f} s with {args.jobs} worker(s); "
                f"CSV: [{stem.name}.csv]({stem.name}.csv)\n"
            )

    import memcc

    header = (
        "# MemTorch Fig. 7 studies, reproduced with `memcc sweep`\n\n"
        "Generated by `examples/reproduce_memtorch_fig7.py` "
        f"(memcc {memcc.__version__}; {time.perf_counter() - t_all:.0f} s in all). Accuracy in % on the "
        "held-out test sets, mean ± std and min – max over seeds "
        f"{', '.join(map(str, SEEDS))} (each seed: other device instances). Shared setup: VTEAM devices "
        "(R_on 50 Ω, R_off 1 kΩ), double-column mapping, naive programming (5 % tolerance, 200 pulses), "
        "no tiling, continuous DAC/ADC; d2d variation 10 % unless varied. "
        "See [../memtorch-fig7.md](../memtorch-fig7.md) for the discussion.\n"
        + ("" if args.limit is None else f"\n**Quick run: first {args.limit} test samples only.**\n")
    )
    with open(out / "fig7.md", "w") as f:
        f.write(header + "\n" + "\n".join(sections))
    print(f"wrote {out}/*.csv, *.png and fig7.md in {time.perf_counter() - t_all:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
