"""PNG plots of device behaviour and programming results (matplotlib, Agg backend).

- :func:`plot_iv_loop`: a device's pinched hysteresis loop (current vs voltage) under a sine
  sweep, with the conductance (and voltage) against time below it.
- :func:`plot_programming_error`: histogram of the relative programming error
  (achieved - target) / target, with the tolerance band and summary statistics.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_iv_loop(model, path, amplitude=None, frequency=None, duration=None, initial=None, log_current=False,
                 title: str | None = None) -> Path:
    """Sweep one device of ``model`` (see :meth:`DeviceModel.iv_loop`) and save the plot to ``path``."""
    t, v, i, g = model.iv_loop(amplitude, frequency, duration, initial)
    plt = _pyplot()
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(6.4, 7.2), gridspec_kw={"height_ratios": [3, 2]})
    ax1.plot(v, i, lw=1.0)
    ax1.axhline(0, color="0.7", lw=0.5)
    ax1.axvline(0, color="0.7", lw=0.5)
    ax1.set_xlabel("voltage (V)")
    ax1.set_ylabel("current (A)")
    if log_current:
        ax1.set_yscale("symlog", linthresh=max(float(np.abs(i).max()) * 1e-6, 1e-15))
    ax1.set_title(title or f"{model.name}: I-V loop")
    ax2.plot(t, g, color="C1", lw=1.0)
    ax2.set_xlabel("time (s)")
    ax2.set_ylabel("conductance (S)", color="C1")
    ax3 = ax2.twinx()
    ax3.plot(t, v, color="0.6", lw=0.6)
    ax3.set_ylabel("voltage (V)", color="0.4")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_programming_error(result, path, bins: int = 100, title: str | None = None) -> Path:
    """Histogram of a :class:`~memcc.programming.ProgrammingResult`'s relative error, saved to ``path``."""
    from memcc.programming import relative_error, summarize

    err = relative_error(result.conductances, result.targets).reshape(-1)
    err = err[np.isfinite(err)]
    stats = summarize(result)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    if err.size:
        ax.hist(err * 100.0, bins=bins, color="C0")
    tol = result.tolerance
    if tol:
        for x in (-tol * 100, tol * 100):
            ax.axvline(x, color="C3", ls="--", lw=1)
    ax.set_xlabel("relative error (achieved - target) / target (%)")
    ax.set_ylabel("devices")
    text = f"n = {stats['n_devices']}"
    if "mean" in stats:
        text += f"\nmean {stats['mean']:+.2%}, std {stats['std']:.2%}"
    if "fraction_converged" in stats:
        text += f"\nconverged {stats['fraction_converged']:.2%}, pulses {stats['mean_pulses']:.1f} avg"
    ax.text(0.02, 0.97, text, transform=ax.transAxes, va="top", fontsize=8)
    ax.set_title(title or f"programming error ({result.method}, tolerance {tol:.0%})")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
