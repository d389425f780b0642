"""`memcc device list | show | iv`: look at the device models before compiling with them."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from memcc.errors import ConfigError, MemccError


def add_parser(sub) -> None:
    d = sub.add_parser("device", help="list, describe and plot the memristor device models")
    dsub = d.add_subparsers(dest="device_command", metavar="ACTION", required=True)

    dsub.add_parser("list", help="the device models memcc knows")

    show = dsub.add_parser("show", help="a device model's parameters, units and defaults")
    show.add_argument("name", help="device model, e.g. vteam")
    _param_flag(show)

    iv = dsub.add_parser("iv", help="plot a device's pinched hysteresis loop under a sine sweep")
    iv.add_argument("name", help="device model, e.g. vteam")
    iv.add_argument("-o", "--output", required=True, help="PNG file to write")
    iv.add_argument("--amplitude", type=float, help="sine amplitude in volts (default: the model's demo)")
    iv.add_argument("--frequency", type=float, help="sine frequency in hertz (default: the model's demo)")
    iv.add_argument("--duration", type=float, help="sweep length in seconds (default: the model's demo)")
    iv.add_argument("--log-current", action="store_true", help="symmetric-log current axis")
    _param_flag(iv)


def _param_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--device-param", action="append", default=[], metavar="NAME=VALUE[:std=S][:min=A][:max=B]",
        help="override a device parameter (repeatable)",
    )


def _device(args):
    from memcc.devices import get_device, parse_parameters

    return get_device(args.name, **parse_parameters(args.device_param))


#: Fewer samples than this per sine period make the loop a few straight segments, not a curve.
MIN_SAMPLES_PER_PERIOD = 20


def _check_sweep(model, args: argparse.Namespace) -> None:
    """Refuse sweep options iv_loop cannot plot meaningfully, naming the flag to change.

    iv_loop itself reports bad values as "iv_loop: ..." (an internal name) and lets NaN through
    to an empty plot; its time step is the device's, coarsened to at most `max_steps` steps.
    """
    import inspect
    import math

    for flag, value in (("--amplitude", args.amplitude), ("--frequency", args.frequency), ("--duration", args.duration)):
        if value is not None and not math.isfinite(value):
            raise ConfigError(f"{flag} {value}: must be a finite number")
    for flag, value in (("--frequency", args.frequency), ("--duration", args.duration)):
        if value is not None and value <= 0:
            raise ConfigError(f"{flag} {value:g}: must be > 0")
    defaults = model.IV_DEFAULTS
    frequency = float(defaults["frequency"] if args.frequency is None else args.frequency)
    duration = float(defaults["duration"] if args.duration is None else args.duration)
    try:
        max_steps = int(inspect.signature(model.iv_loop).parameters["max_steps"].default)
    except (KeyError, TypeError, ValueError):
        max_steps = 20000
    device_dt = float(model.dt)
    dt = max(device_dt, duration / max_steps)
    samples = 1.0 / (frequency * dt)
    if samples >= MIN_SAMPLES_PER_PERIOD:
        return
    if duration / max_steps > device_dt:
        fix = (f"the sweep has at most {max_steps} steps, so {duration:g} s of a {frequency:g} Hz sine gets "
               f"{samples:.3g} samples per period; use --duration <= "
               f"{max_steps / (MIN_SAMPLES_PER_PERIOD * frequency):.3g} or a lower --frequency")
    else:
        fix = (f"the device's time step ({device_dt:g} s) gives a {frequency:g} Hz sine {samples:.3g} samples "
               f"per period; use --frequency <= {1.0 / (MIN_SAMPLES_PER_PERIOD * device_dt):.3g}")
    if args.frequency is None and args.duration is None:
        # The device's own demo settings: still plot, but say the curve is too coarse to trust.
        print(f"memcc: warning: {fix}", file=sys.stderr)
        return
    raise ConfigError(f"I-V sweep too coarse: {fix}")


def cmd_device(args: argparse.Namespace) -> int:
    from memcc.devices import device_class, list_devices

    if args.device_command == "list":
        for name in list_devices():
            print(f"{name:<18} {device_class(name).summary}")
        return 0
    model = _device(args)
    if args.device_command == "show":
        print(f"{model.name}: {model.summary}")
        rows = model.describe()
        width = max(len(r[0]) for r in rows)
        vwidth = max(len(r[1]) for r in rows)
        for name, value, unit, doc in rows:
            print(f"  {name:<{width}}  {value:>{vwidth}} {unit:<4} {doc}")
        return 0
    # iv
    from memcc.io import atomic_output
    from memcc.plots import plot_iv_loop

    out = Path(args.output)
    if out.suffix.lower() != ".png":
        raise ConfigError(f"--output {args.output!r}: the plot is written as PNG; give a .png file name")
    if model.is_stochastic:
        model = model.sample(1, seed=0)
    _check_sweep(model, args)
    with atomic_output(out) as tmp:
        plot_iv_loop(model, tmp, args.amplitude, args.frequency, args.duration, log_current=args.log_current)
    print(f"wrote {out}")
    return 0


__all__ = ["add_parser", "cmd_device", "MemccError"]
