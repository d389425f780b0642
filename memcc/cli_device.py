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


#: iv_loop's argument names as `memcc device iv` spells them
_IV_FLAGS = {"amplitude": "--amplitude", "frequency": "--frequency", "duration": "--duration"}


def _check_sweep(model, args: argparse.Namespace) -> None:
    """Refuse sweep options iv_loop cannot plot meaningfully, naming the flag to change.

    iv_loop's own errors name its arguments ("iv_loop: frequency ..."), which a CLI user never
    typed; a sweep too coarse to show a curve is refused only when the user chose it (the
    device's demo settings still plot, with a warning).
    """
    from memcc.devices import ParameterError

    try:
        plan = model.iv_sampling(args.amplitude, args.frequency, args.duration)
    except ParameterError as exc:
        flag = _IV_FLAGS.get(getattr(exc, "parameter", None))
        if flag is None:
            raise
        raise ConfigError(f"{flag} {exc.value:g}: {exc.requirement}") from None
    samples = plan["samples_per_period"]
    if samples >= MIN_SAMPLES_PER_PERIOD:
        return
    frequency, duration, max_steps = plan["frequency"], plan["duration"], plan["max_steps"]
    if plan["dt"] > plan["device_dt"]:  # the step cap, not the device, limits the sampling
        fix = (f"the sweep has at most {max_steps} steps, so {duration:g} s of a {frequency:g} Hz sine gets "
               f"{samples:.3g} samples per period; use --duration <= "
               f"{max_steps / (MIN_SAMPLES_PER_PERIOD * frequency):.3g} or a lower --frequency")
    else:
        fix = (f"the device's time step ({plan['device_dt']:g} s) gives a {frequency:g} Hz sine {samples:.3g} "
               f"samples per period; use --frequency <= {1.0 / (MIN_SAMPLES_PER_PERIOD * plan['device_dt']):.3g}")
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
    from memcc.cli import message_stream

    print(f"wrote {out}", file=message_stream(out))
    return 0


__all__ = ["add_parser", "cmd_device", "MemccError"]
