"""`memcc sweep`: accuracy over a grid of crossbar settings × seeds (see `memcc.sweep`).

    memcc sweep model.onnx --data fmnist --vary d2d-std=0,0.1,0.2,0.3 --seeds 3 \\
        --device vteam --tile 128x128 --adc-bits 8 --jobs 2 -o results.csv [--plot results.png]

Hooked into `memcc.cli` with `cli_sweep.add_parser(sub)` and `COMMANDS["sweep"] = cli_sweep.cmd_sweep`;
`main(argv)` is `memcc.cli.main(["sweep", *argv])` (one-line errors, exit status 2; usage errors
point to `memcc sweep --help`).

Stopping: Ctrl-C (SIGINT) ends with "memcc: interrupted" and exit status 130, SIGTERM (`kill PID`)
with "memcc: terminated" and exit status 143 (128 + 15, as a shell reports a process SIGTERM
killed). Either way the worker processes are terminated, and a signal that comes while the
points are evaluated leaves no CSV or plot (each is written atomically once the sweep is done).
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
import time
from pathlib import Path

from memcc.errors import ConfigError

#: `memcc compile` flags a sweep takes as fixed settings (argparse dest names)
FIXED_FLAGS = (
    "device", "scheme", "tile", "dac_bits", "adc_bits", "adc_overflow_rate", "r_on", "r_off",
    "max_input_voltage", "input_range", "d2d_std", "programming",
)


def add_parser(sub) -> argparse.ArgumentParser:
    from memcc.sweep import VARY_KEYS

    s = sub.add_parser(
        "sweep",
        help="accuracy over a grid of crossbar settings and seeds (CSV + plot)",
        description="Compile the model for every combination of the --vary values and every seed, "
        "evaluate each on a data set with memcc's op library (in parallel worker processes), and "
        "write a CSV (one row per point, plus the original model's digital baseline) and a PNG "
        "plot of accuracy against the first varied setting (mean, std and min-max over seeds). "
        "The same seeds give the same numbers.",
    )
    s.add_argument("model", help="the original ONNX model")
    s.add_argument("--data", required=True, metavar="SPEC",
                   help="evaluation data: fmnist (Debian's dataset-fashion-mnist), fmnist:DIR, digits "
                   "(scikit-learn), or npz:PATH (arrays x, y); inputs are reshaped to the model's input rank")
    s.add_argument("--split", default="test", choices=("test", "train"), help="data split (default test)")
    s.add_argument("--limit", type=_positive_int("--limit"), metavar="N", help="use only the first N samples")
    s.add_argument("--vary", action="append", default=[], metavar="KEY=V1,V2,...",
                   help="a setting and its values (repeatable; the grid is the product). Keys: "
                   + ", ".join(VARY_KEYS) + "; ratio = R_off/R_on with R_on at the device's value, "
                   "n-states = finite_states:n=N")
    seeds = s.add_mutually_exclusive_group()
    seeds.add_argument("--seeds", type=_positive_int("--seeds"), metavar="N", help="seeds 0..N-1 per setting (default 3)")
    seeds.add_argument("--seed-list", metavar="S1,S2,...", help="explicit seeds per setting")
    s.add_argument("--jobs", "-j", type=_positive_int("--jobs"), metavar="N",
                   help="worker processes (default min(2, CPUs)); each uses one onnxruntime thread when N > 1")
    s.add_argument("--batch-size", type=_positive_int("--batch-size"), default=500, metavar="N",
                   help="samples per onnxruntime run (default 500; a model with a fixed batch size "
                   "gets that size). With read noise on, the accuracy depends on it (and on --limit): "
                   "the op's noise stream counts runs, so other batches draw other noise")
    s.add_argument("--model-output", metavar="NAME",
                   help="output to score (default: the first float output, argmax = prediction; "
                   "else the first integer output, taken as labels)")
    s.add_argument("-o", "--output", required=True, help="CSV file to write")
    s.add_argument("--plot", help="PNG file for the plot (default: the CSV's name with .png)")
    s.add_argument("--no-plot", action="store_true", help="write no plot")
    s.add_argument("--title", help="plot title")
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no summary")

    g = s.add_argument_group("fixed compile settings (as for `memcc compile`)")
    g.add_argument("--device", help="device model (default: ideal)")
    g.add_argument("--scheme", help="double (default) or single")
    g.add_argument("--tile", help="crossbar size ROWSxCOLS, e.g. 128x128 (default: no tiling)")
    g.add_argument("--dac-bits", help="DAC resolution in bits, 0 = continuous")
    g.add_argument("--adc-bits", help="ADC resolution in bits, 0 = continuous")
    g.add_argument("--adc-overflow-rate", help="fraction of a read allowed to overflow the ADC")
    g.add_argument("--r-on", help="low-resistance state in ohms (default: the device's)")
    g.add_argument("--r-off", help="high-resistance state in ohms (default: the device's)")
    g.add_argument("--max-input-voltage", help="largest word-line voltage in volts")
    g.add_argument("--input-range", help="fixed input range; 0 = per vector")
    g.add_argument("--d2d-std", help="device-to-device spread of r_on/r_off (default: the device's)")
    g.add_argument("--programming", help="naive or ideal")
    g.add_argument("--tolerance", help="naive programming: relative tolerance (default 0.05)")
    g.add_argument("--max-pulses", help="naive programming: pulse budget per device (default 200)")
    g.add_argument("--device-param", action="append", default=None, metavar="NAME=VALUE[:std=S][:min=A][:max=B]",
                   help="a device parameter (repeatable)")
    g.add_argument("--nonideality", action="append", default=None, metavar="NAME[:KEY=VALUE]...",
                   help="a non-ideality of the programmed chip (repeatable), e.g. faults:stuck_lrs=0.01")
    g.add_argument("--config", help="TOML file with compile settings (flags override it)")
    return s


def _positive_int(flag: str):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
        return value
    parse.__name__ = flag
    return parse


def cmd_sweep(args: argparse.Namespace) -> int:
    from memcc import config as cfg
    from memcc import io as mio
    from memcc import sweep

    if not args.vary:
        raise ConfigError("nothing to sweep: give at least one --vary KEY=V1,V2,... (e.g. --vary d2d-std=0,0.1,0.2)")
    grid = sweep.parse_grid(args.vary)
    seeds = sweep.parse_seeds(args.seeds, args.seed_list)
    file_settings = cfg.load_config(args.config) if args.config else {}
    if "seed" in file_settings:
        file_settings = {k: v for k, v in file_settings.items() if k != "seed"}
    fixed = {k: getattr(args, k) for k in FIXED_FLAGS if getattr(args, k) is not None}
    if args.device_param:
        fixed["device_params"] = args.device_param
    if args.nonideality:
        fixed["nonidealities"] = args.nonideality
    options = {"tolerance": cfg.flag_number(args.tolerance, "--tolerance", float),
               "max_pulses": cfg.flag_number(args.max_pulses, "--max-pulses", int)}
    options = {k: v for k, v in options.items() if v is not None}
    if options:
        fixed["programming_options"] = options

    model_path = Path(args.model)
    if not model_path.is_file():
        raise ConfigError(f"{args.model}: no such file" if not model_path.exists() else f"{args.model}: not a file")
    csv_path = mio.check_side_file(args.output, "output", model_path)
    if csv_path.suffix.lower() != ".csv":
        raise ConfigError(f"output {args.output!r}: use a .csv file name")
    plot_path = None
    if not args.no_plot:
        plot_path = mio.check_side_file(args.plot, "plot", model_path, csv_path) if args.plot else csv_path.with_suffix(".png")
        if plot_path.suffix.lower() != ".png":
            raise ConfigError(f"plot {str(plot_path)!r}: use a .png file name")

    t0 = time.perf_counter()
    try:
        with _sigterm_raises():
            result = sweep.run_sweep(
                model_path, args.data, grid, seeds=seeds, fixed=fixed, file_settings=file_settings,
                split=args.split, limit=args.limit, jobs=args.jobs, batch=args.batch_size,
                output_name=args.model_output, progress=False if args.quiet else None,
            )
            result.write_csv(csv_path)
            if plot_path is not None:
                result.plot(plot_path, title=args.title)
    except Terminated:
        print("memcc: terminated", file=sys.stderr)
        return EXIT_TERMINATED
    if not args.quiet:
        from memcc.cli import message_stream

        stream = message_stream(csv_path, plot_path)
        print(result.summary(), file=stream)
        wrote = f"wrote {csv_path}" + (f" and {plot_path}" if plot_path is not None else "")
        print(f"{wrote} ({_runs_text(len(result.rows))} in {time.perf_counter() - t0:.1f} s)", file=stream)
    return 0


def _runs_text(points: int) -> str:
    """Counted as the progress counts them: the crossbar points plus the digital baseline."""
    return f"{points} point{'s' if points != 1 else ''} + digital baseline = {points + 1} runs"


#: exit status after SIGTERM: 128 + the signal's number, as shells report it
EXIT_TERMINATED = 128 + int(signal.SIGTERM)


class Terminated(BaseException):
    """SIGTERM arrived. A BaseException, like KeyboardInterrupt, so that no `except Exception`
    swallows it on the way out and every `finally` (worker shutdown, temporary files) runs."""


@contextlib.contextmanager
def _sigterm_raises():
    """While the block runs, SIGTERM raises `Terminated` in the main thread (as Ctrl-C raises
    KeyboardInterrupt): the sweep terminates its workers instead of dying and orphaning them."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return

    def handler(signum, frame):
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv=None) -> int:
    """`memcc sweep ...` on its own: the arguments after `sweep`."""
    from memcc import cli

    return cli.main(["sweep", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
