"""The `memcc` command line: compile, info, run.

Every error the user can cause ends as one line `memcc: error: ...` on stderr and exit status 2,
with no traceback and no output file left behind.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Sequence, TextIO

from memcc.errors import ConfigError, MemccError

EXIT_USER_ERROR = 2
PROG = "memcc"


class _UsageError(Exception):
    """argparse found a bad flag; reported like any other user error."""

    def __init__(self, message: str, prog: str = PROG):
        super().__init__(message)
        # The (sub)command whose flags were wrong, so the hint names its own --help.
        self.prog = prog


class _Parser(argparse.ArgumentParser):
    """Usage errors as `_UsageError`s, reported by the (sub)command whose flags were wrong.

    Subcommand parsers are made with this class too (argparse's add_subparsers default).
    """

    _given: list[str] = []

    def parse_known_args(self, args=None, namespace=None):
        # Kept for error()'s hint: argparse's messages do not say which value was taken for a flag.
        self._given = list(sys.argv[1:] if args is None else args)
        namespace, extras = super().parse_known_args(args, namespace)
        if extras:
            # Left to the top-level parser, they would be reported with "see `memcc --help`",
            # which does not list the subcommand's flags.
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return namespace, extras

    def error(self, message: str):  # noqa: D401 - argparse hook
        raise _UsageError(message + _dash_value_hint(message, self._given), self.prog)


def _dash_value_hint(message: str, args: Sequence[str]) -> str:
    """For "argument --seed-list: expected one argument" after `--seed-list -1,2`: a hint to
    write `--seed-list=-1,2`. argparse takes a value starting with '-' for a flag unless it looks
    like a plain negative number (so `--seed -1` parses, `--input-range -1e3` does not)."""
    if not message.startswith("argument ") or not message.endswith("expected one argument"):
        return ""
    flags = message[len("argument "):].split(":")[0].split("/")
    for i, arg in enumerate(args[:-1]):
        if arg in flags and args[i + 1].startswith("-"):
            long = max(flags, key=len)
            return f"; a value starting with '-' must be attached: {long}={args[i + 1]}"
    return ""


def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


# --------------------------------------------------------------------------------------------
# Argument parsing
# --------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    from memcc import __version__

    parser = _Parser(
        prog=PROG,
        description="Compile ONNX models into simulations of memristive crossbar hardware.",
    )
    parser.add_argument("--version", action="version", version=f"memcc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    c = sub.add_parser(
        "compile",
        help="map a model's Gemm/MatMul/Conv layers onto crossbars",
        description="Map a model's Gemm/MatMul/Conv layers onto memristive crossbars. Flags "
        "override the settings of --config; unset ones take the compiler's defaults.",
    )
    c.add_argument("model", help="input ONNX model")
    c.add_argument("-o", "--output", help="output model (default: <input>.mem.onnx next to the input)")
    c.add_argument("--device", help="device model (default: ideal)")
    c.add_argument("--scheme", help="double (differential pair, default) or single (reference column)")
    c.add_argument("--tile", help='crossbar size ROWSxCOLS, e.g. 128x128; "128" = square; "none" = no tiling (default)')
    c.add_argument("--dac-bits", help="DAC resolution in bits, 0 = continuous (default 0)")
    c.add_argument("--adc-bits", help="ADC resolution in bits, 0 = continuous (default 0)")
    c.add_argument("--adc-overflow-rate", help="fraction of a read allowed to overflow the ADC, 0 <= q < 1 (default 0)")
    c.add_argument("--r-on", help="low-resistance state in ohms (default: the device's)")
    c.add_argument("--r-off", help="high-resistance state in ohms (default: the device's)")
    c.add_argument("--max-input-voltage", help="largest word-line voltage in volts (default 0.3)")
    c.add_argument("--input-range", help="fixed input range mapped to the largest voltage; 0 = per vector (default 0)")
    c.add_argument("--seed", help="random seed for device variation (default 0)")
    c.add_argument(
        "--device-param", action="append", default=None, metavar="NAME=VALUE[:std=S][:min=A][:max=B]",
        help="set a device parameter, as a number or a clipped normal sampled once per device (repeatable)",
    )
    c.add_argument("--d2d-std", help="device-to-device spread of r_on/r_off, relative std (default: the device's, 0.1 for physical models)")
    c.add_argument("--programming", help="naive (SET/RESET pulses until within tolerance; default for physical devices) or ideal (set to target)")
    c.add_argument("--tolerance", help="naive programming: relative tolerance on the target conductance (default 0.05)")
    c.add_argument("--max-pulses", help="naive programming: pulse budget per device (default 200)")
    c.add_argument(
        "--nonideality", action="append", default=None, metavar="NAME[:KEY=VALUE]...",
        help="apply a non-ideality (repeatable, applied in the order given; replaces the config file's "
        "list). Of the programmed chip: finite_states:n=16 | finite_states:states=G1,G2,... (siemens) | "
        "faults:stuck_lrs=P:stuck_hrs=P:unformed=P | endurance:cycles=N. Drawn by the op at run time: "
        "read_noise:std=0.05 (relative, every read) | nonlinear (the device's I-V curve; data_driven, "
        "stanford_pku) | drift:nu=0.05:nu_std=0.01 (the model gets an input memcc_time_s, seconds "
        "since programming)",
    )
    c.add_argument("--config", help="TOML file with compile settings (flags override it)")
    c.add_argument("--report", help="write a JSON report (mapped and skipped layers, programming statistics) and a PNG of "
                   "the programming error next to it (<name>.png; none when the report goes to a device or pipe)")
    c.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no summary")

    i = sub.add_parser("info", help="per-layer crossbar usage of a compiled model")
    i.add_argument("model", help="compiled (mem.onnx) model")
    i.add_argument("--json", action="store_true", help="print the description as JSON")

    r = sub.add_parser(
        "run",
        help="run a compiled model on .npy inputs",
        description="Run a model with memcc's op library. --input FILE.npy feeds the model's "
        "inputs in order; --input NAME=FILE.npy feeds one by name; an .npz file feeds inputs by "
        "its keys.",
    )
    r.add_argument("model", help="model to run")
    r.add_argument("--input", "-i", action="append", default=[], metavar="[NAME=]FILE", help="input array (.npy or .npz)")
    r.add_argument("-o", "--output", help="save the outputs (.npy for one output, .npz for several)")
    from memcc import cli_device, cli_sweep

    cli_device.add_parser(sub)
    cli_sweep.add_parser(sub)
    return parser


COMPILE_FLAGS = (
    "device", "scheme", "tile", "dac_bits", "adc_bits", "adc_overflow_rate",
    "r_on", "r_off", "max_input_voltage", "input_range", "seed", "d2d_std", "programming",
)


# --------------------------------------------------------------------------------------------
# compile
# --------------------------------------------------------------------------------------------


def default_output_path(model_path: str) -> Path:
    p = Path(model_path)
    stem = p.name[: -len(".onnx")] if p.name.lower().endswith(".onnx") else p.name
    return p.with_name(stem + ".mem.onnx")


def cmd_compile(args: argparse.Namespace) -> int:
    from memcc import config as cfg
    from memcc import io as mio

    file_settings = cfg.load_config(args.config) if args.config else {}
    overrides = {key: getattr(args, key) for key in COMPILE_FLAGS}
    overrides["device_params"] = args.device_param
    overrides["nonidealities"] = args.nonideality
    programming_flags = {"tolerance": cfg.flag_number(args.tolerance, "--tolerance", float),
                         "max_pulses": cfg.flag_number(args.max_pulses, "--max-pulses", int)}
    overrides["programming_options"] = {k: v for k, v in programming_flags.items() if v is not None} or None
    settings = cfg.resolve(file_settings, overrides)

    in_path = Path(args.model)
    out_path = Path(args.output) if args.output else default_output_path(args.model)
    # Check every output before the (possibly long) compilation, so a bad path fails fast.
    mio.check_output_path(out_path, input_path=in_path)
    report_path = (
        mio.check_side_file(args.report, "report", in_path, out_path) if args.report is not None else None
    )
    report_through = report_path is not None and mio._output_target(report_path, "report")[1]
    suffix = report_path.suffix.lower() if report_path is not None else ""
    if not report_through and suffix in _NOT_JSON_SUFFIXES:
        # Such a name is almost always a plot or model name given to the wrong flag; the report
        # would be JSON whatever its name says.
        raise ConfigError(
            f"--report {args.report!r}: the report is written as JSON, not {suffix} (its plot of the "
            "programming error goes next to it as <name>.png); give a .json file name"
        )

    show = not args.quiet
    t0 = time.perf_counter()
    big = in_path.is_file() and in_path.stat().st_size >= _STATUS_MIN_BYTES
    if show and big:
        _status(f"loading {in_path} ({_size_text(in_path.stat().st_size)})")
    model = mio.load_model(in_path)
    from memcc import compiler

    kwargs = dict(settings, tile=tuple(settings["tile"]))
    compiled, report = compiler.compile_with_report(model, progress=False if args.quiet else None, **kwargs)
    if show and big:
        _status(f"saving {out_path}")
    mio.save_model(compiled, out_path, input_path=in_path)
    # The report follows the model it describes: a failed save leaves neither file behind.
    plot_path = None
    if report_path is not None:
        extra = {"input": str(in_path), "output": str(out_path), "settings": _jsonable_settings(settings)}
        # No plot "next to" a device or pipe: /dev/stdout.png would be a file in /dev.
        _, plot_path = compiler.write_report(report, report_path, plot=not report_through, extra=extra)
    elapsed = time.perf_counter() - t0

    if show:
        out_through = mio._output_target(out_path)[1]
        # A device or pipe has no size to stat afterwards; save_model wrote the serialized model.
        size = mio.serialized_size(compiled) if out_through else out_path.stat().st_size
        stream = message_stream(out_path, report_path)
        print(_compile_summary(report, compiled, out_path, size, elapsed), file=stream)
        if report_path is not None:
            print(f"wrote {report_path}" + (f" and {plot_path}" if plot_path else ""), file=stream)
    return 0


#: --report names that are surely not meant for a JSON report (a plot, a model, arrays, a table)
_NOT_JSON_SUFFIXES = frozenset({
    ".png", ".jpg", ".jpeg", ".pdf", ".svg", ".eps", ".ps", ".onnx", ".npy", ".npz", ".csv", ".tsv", ".toml",
})


def message_stream(*outputs) -> TextIO:
    """Where a command's summary and "wrote ..." lines go: stderr when any of `outputs` is a
    device or pipe the io layer writes through, since that may be stdout itself (`-o
    /dev/stdout`) and text after the data would corrupt it; else stdout."""
    from memcc import io as mio

    through = any(p is not None and mio._output_target(Path(p))[1] for p in outputs)
    return sys.stderr if through else sys.stdout


def _jsonable_settings(settings: dict[str, Any]) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in settings.items()}


#: Loading and saving are announced (on stderr) for models at least this large.
_STATUS_MIN_BYTES = 64 * 2**20


def _status(message: str) -> None:
    print(f"memcc: {message} ...", file=sys.stderr, flush=True)


def _compile_summary(report, compiled, out: Path, size: int, elapsed: float) -> str:
    from memcc import info as minfo

    lines = [report.summary()]
    t = minfo.describe(compiled)["totals"]
    if t.get("crossbars"):
        lines.append(f"crossbars: {t['tiles']:,} tiles, {t['crossbars']:,} arrays, {t['devices']:,} devices")
    lines.append(f"wrote {out} ({_size_text(size)}) in {elapsed:.1f} s")
    return "\n".join(lines)


def _size_text(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


# --------------------------------------------------------------------------------------------
# info
# --------------------------------------------------------------------------------------------


def cmd_info(args: argparse.Namespace) -> int:
    from memcc import info as minfo
    from memcc import io as mio

    model = mio.load_model(args.model)
    desc = minfo.describe(model)
    if args.json:
        print(json.dumps(desc, indent=2))
    else:
        print(minfo.format_table(desc))
    return 0


# --------------------------------------------------------------------------------------------
# run
# --------------------------------------------------------------------------------------------


def _load_array_file(path: str) -> Any:
    import numpy as np

    p = Path(path)
    if not p.exists():
        raise ConfigError(f"input file {path!r}: no such file")
    if p.is_dir():
        raise ConfigError(f"input file {path!r} is a directory")
    try:
        return np.load(p, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ConfigError(f"input file {path!r} is not a readable .npy/.npz file: {_one_line(str(exc))}") from None


def _inputs_text(required: list[str], optional: list[str]) -> str:
    text = ", ".join(required) or "none"
    if not optional:
        return text
    # Old (IR < 4) models list every weight as an input with a default: keep the line short.
    shown = ", ".join(optional[:8]) + (f" and {len(optional) - 8} more" if len(optional) > 8 else "")
    return f"{text}; optional: {shown}"


def _gather_inputs(specs: Sequence[str], input_names: list[str], optional: Sequence[str] = ()) -> dict:
    """Arrays for the model's inputs from --input specs. `input_names` must all be given
    (unnamed files fill them in order); `optional` ones (inputs with a default, such as drift's
    memcc_time_s) only by name or .npz key."""
    import numpy as np

    known = set(input_names) | set(optional)
    listed = _inputs_text(input_names, optional)
    feed: dict[str, Any] = {}
    positional: list[tuple[str, Any]] = []
    for spec in specs:
        name, sep, file = spec.partition("=")
        if sep and name in known and not Path(spec).exists():
            if name in feed:
                raise ConfigError(f"input {name!r} is given twice")
            arr = _load_array_file(file)
            if not isinstance(arr, np.ndarray):
                raise ConfigError(f"{file!r}: NAME=FILE needs an .npy file, not an .npz archive")
            feed[name] = arr
            continue
        if sep and not Path(spec).exists() and name not in known:
            raise ConfigError(
                f"--input {spec!r}: the model has no input named {name!r}; its inputs are: {listed}"
            )
        data = _load_array_file(spec)
        if isinstance(data, np.ndarray):
            positional.append((spec, data))
        else:  # .npz: arrays by input name
            with data:
                for key in data.files:
                    if key not in known:
                        raise ConfigError(
                            f"{spec!r} holds array {key!r}, but the model has no such input; its inputs are: {listed}"
                        )
                    if key in feed:
                        raise ConfigError(f"input {key!r} is given twice")
                    feed[key] = data[key]
    free = [n for n in input_names if n not in feed]
    if len(positional) > len(free):
        more = f"; give optional inputs by name ({optional[0]}=FILE.npy)" if optional else ""
        raise ConfigError(
            f"{len(positional)} unnamed input files for {len(free)} remaining model input(s) "
            f"({', '.join(free) or 'none'}){more}"
        )
    for (_, arr), name in zip(positional, free):
        feed[name] = arr
    missing = [n for n in input_names if n not in feed]
    if missing:
        raise ConfigError(
            f"no value for model input {missing[0]!r}; pass --input FILE.npy or --input {missing[0]}=FILE.npy"
        )
    return feed


def cmd_run(args: argparse.Namespace) -> int:
    import numpy as np

    from memcc import io as mio
    from memcc import runtime

    out_path = None
    out_through = False
    fmt = None
    if args.output:
        out_path = mio.check_side_file(args.output, "output", Path(args.model))
        out_through = mio._output_target(out_path)[1]
        fmt = out_path.suffix.lower() if out_path.suffix.lower() in (".npy", ".npz") else None
        # A device or pipe (/dev/stdout) has no file name to choose the format by: it gets one
        # below, from the number of outputs.
        if fmt is None and not out_through:
            raise ConfigError(f"output {args.output!r}: use a .npy or .npz file name")
    model = mio.load_model(args.model)
    n_outputs = len(model.graph.output)
    if out_path is not None and fmt is None:
        fmt = ".npy" if n_outputs == 1 else ".npz"
    if fmt == ".npy" and n_outputs != 1:
        raise ConfigError(
            f"the model has {n_outputs} outputs; save them to an .npz file instead of {args.output!r}"
        )
    # A graph input that is also an initializer is an input with a default (README: "an
    # overridable initializer"), e.g. drift's memcc_time_s: it may be fed, need not be.
    initializers = {init.name for init in model.graph.initializer}
    input_names = [i.name for i in model.graph.input if i.name not in initializers]
    optional = [i.name for i in model.graph.input if i.name in initializers]
    feed = _gather_inputs(args.input, input_names, optional)  # read the arrays before the library loads
    source = model if mio.serialized_size(model) < 2**31 - 2**20 else args.model
    import onnxruntime as ort

    options = ort.SessionOptions()
    # Errors only: onnxruntime warns on every run that an input with a default (memcc_time_s)
    # "will not be treated as constant", which is the point of it.
    options.log_severity_level = 3
    sess = runtime.session(source, sess_options=options)
    outputs = runtime.run(sess, feed)
    names = [o.name for o in sess.get_outputs()]
    # Arrays written through a pipe may be going to stdout itself: text there would corrupt them.
    stream = sys.stderr if out_through else sys.stdout
    for name, value in zip(names, outputs):
        arr = np.asarray(value)
        print(f"{name}: {arr.dtype} [{', '.join(str(d) for d in arr.shape)}]", file=stream)
    if out_path is not None:
        _save_arrays(out_path, dict(zip(names, outputs)), fmt)
        print(f"wrote {out_path}", file=stream)
    return 0


def _save_arrays(path: Path, arrays: dict, fmt: str) -> None:
    import numpy as np

    from memcc.io import atomic_output

    with atomic_output(path) as tmp:
        with open(tmp, "wb") as f:  # a file object: numpy would append .npy/.npz to a name
            if fmt == ".npz":
                np.savez(f, **arrays)
            else:
                np.save(f, next(iter(arrays.values())))


# --------------------------------------------------------------------------------------------


def cmd_device(args: argparse.Namespace) -> int:
    from memcc import cli_device

    return cli_device.cmd_device(args)


def cmd_sweep(args: argparse.Namespace) -> int:
    from memcc import cli_sweep

    return cli_sweep.cmd_sweep(args)


COMMANDS = {"compile": cmd_compile, "info": cmd_info, "run": cmd_run, "device": cmd_device, "sweep": cmd_sweep}


def _error(message: str) -> int:
    print(f"{PROG}: error: {_one_line(message)}", file=sys.stderr)
    return EXIT_USER_ERROR


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        return COMMANDS[args.command](args)
    except _UsageError as exc:
        return _error(f"{exc} (see `{exc.prog} --help`)" if "argument" in str(exc) else str(exc))
    except MemccError as exc:
        return _error(str(exc))
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
