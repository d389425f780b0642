"""Programming throughput (devices/s) of every switching device model.

    python benchmarks/bench_programming.py            # 2 million devices per model
    python benchmarks/bench_programming.py --full     # 23 million (ResNet-18-sized)
    python benchmarks/bench_programming.py -n 500000 --models vteam,stanford_pku --std 0.1

Targets are uniform over each model's conductance range; programming uses the model's default
pulse settings (naive write-and-verify, 5 % tolerance). ``--std`` adds device-to-device
variability (relative std of r_on and r_off).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from memcc.devices.data_driven import DataDriven  # noqa: E402
from memcc.devices.linear_ion_drift import LinearIonDrift  # noqa: E402
from memcc.devices.parameters import Distribution  # noqa: E402
from memcc.devices.stanford_pku import StanfordPKU  # noqa: E402
from memcc.devices.vteam import VTEAM  # noqa: E402
from memcc.programming import program_naive, summarize  # noqa: E402

MODELS = {c.name: c for c in (VTEAM, LinearIonDrift, StanfordPKU, DataDriven)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=2_000_000, help="devices per model (default 2M)")
    ap.add_argument("--full", action="store_true", help="23M devices (ResNet-18 sized)")
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated model names")
    ap.add_argument("--std", type=float, default=0.0, help="relative std of r_on/r_off (variability)")
    ap.add_argument("--workers", type=int, default=None, help="threads (default: all cores)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    n = 23_000_000 if args.full else args.n
    rows = []
    for name in args.models.split(","):
        cls = MODELS[name.strip()]
        model = cls()
        if args.std > 0:
            d = cls.defaults()
            model = cls(r_on=Distribution(d["r_on"], args.std * d["r_on"], min=d["r_on"] * 0.1),
                        r_off=Distribution(d["r_off"], args.std * d["r_off"], min=d["r_on"] * 1.5))
        lo, hi = (cls().g_off, cls().g_on)
        targets = np.random.default_rng(args.seed).uniform(lo, hi, n)
        t0 = time.perf_counter()
        res = program_naive(model, targets, seed=args.seed, workers=args.workers)
        wall = time.perf_counter() - t0
        s = summarize(res)
        rows.append((name, n, wall, n / wall, s["fraction_converged"], s["mean_pulses"], s["max_pulses_used"],
                     s["mean_abs"]))
        print(f"  {name}: {n / wall:,.0f} devices/s", file=sys.stderr, flush=True)
    print(f"{'model':<18}{'devices':>12}{'seconds':>10}{'devices/s':>14}{'converged':>11}{'pulses':>8}{'max':>6}{'mean|err|':>11}")
    for name, n_, wall, rate, conv, mp, mx, mae in rows:
        print(f"{name:<18}{n_:>12,}{wall:>10.2f}{rate:>14,.0f}{conv:>11.4%}{mp:>8.1f}{mx:>6d}{mae:>11.3%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
