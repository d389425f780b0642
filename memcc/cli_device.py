"""`memcc device list | show | iv`: look at the device models before compiling with them."""

from __future__ import annotations

import argparse
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
    with atomic_output(out) as tmp:
        plot_iv_loop(model, tmp, args.amplitude, args.frequency, args.duration, log_current=args.log_current)
    print(f"wrote {out}")
    return 0


__all__ = ["add_parser", "cmd_device", "MemccError"]
