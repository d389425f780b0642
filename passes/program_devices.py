"""`ProgramDevices`: simulate writing every layer's target conductances into its devices.

Runs after `MapWeights` (whose G initializers hold the *target* conductances, mapped onto the
device's nominal window) and replaces each layer's G by the conductances its simulated devices
actually reach (float32), for every crossbar of the layer (both crossbars of the double-column
scheme, the one crossbar of the single-column scheme; the single scheme's reference column keeps
its nominal `g_ref`).

Per layer, all S·K·N devices are programmed in one vectorised call of `memcc.programming`:

- device instances: parameters given as distributions are sampled once per device with the
  layer's seed `layer_seed(options.seed, node name)`, so the same seed gives bit-identical
  conductances and a different seed different device instances (`sample_layer_devices` rebuilds
  a layer's instances);
- method `ctx.programming`: "naive" (pulse write-and-verify with `options.programming_options`;
  devices that miss the tolerance keep the state they reached) or "ideal" (set to target,
  clipped to each device's own range).

Targets are the mapped float32 values clipped to the nominal window in float64 (so float32
rounding of g_off/g_on does not count as "out of range"). Each layer's statistics
(`layer_stats`) go to `MappedLayer.programming`, the totals and an error histogram to
`CompileReport.programming`, and the per-device outcome to `CompileReport.programmed` (for the
error plot of `memcc.compiler.write_report`). A tqdm bar over devices is shown when
`ctx.progress` is True, or (None) on a terminal once programming has taken more than a second.
"""

from __future__ import annotations

import math
import threading
import zlib
from dataclasses import dataclass

import numpy as np
from onnx import numpy_helper

from .base import CompileContext, Pass

#: bins of the relative-error histogram in `CompileReport.programming["histogram"]`
HISTOGRAM_BINS = 60


def layer_seed(seed: int, name: str) -> int:
    """The seed of one layer's device instances: derived from the compile seed and node name."""
    ss = np.random.SeedSequence(int(seed), spawn_key=(zlib.crc32(name.encode("utf-8")),))
    a, b = ss.generate_state(2, np.uint64)
    return (int(a) << 64) | int(b)


def sample_layer_devices(device, n: int, seed: int, name: str):
    """The device instances (`DeviceModel` with per-device parameters, or `device` itself when
    nothing is stochastic) that `ProgramDevices` programs for layer `name` with `n` devices."""
    return device.sample(n, layer_seed(seed, name)) if device.is_stochastic else device


@dataclass
class LayerDevices:
    """Per-device programming outcome of one layer (flattened [S, K, N] order)."""

    node: str
    source: str
    errors: np.ndarray  # float32 relative error (achieved - target) / target
    converged: np.ndarray  # bool
    pulses: np.ndarray  # int32
    out_of_range: np.ndarray  # bool
    tolerance: float
    method: str


def layer_stats(result, targets: np.ndarray, g_ref: float | None = None) -> dict:
    """Statistics of one layer's `ProgrammingResult` (`memcc.programming.summarize`) plus counts
    n_programmed / n_converged / n_missed, the number of crossbars and `weight_error`: the
    relative RMS error of the computed weights, ||D_achieved - D_target|| / ||D_target|| with
    D = G[0] - G[1] (double) or G[0] - g_ref (single)."""
    from memcc.programming import summarize

    stats = summarize(result)
    n = int(result.targets.size)
    conv = int(np.count_nonzero(result.converged))
    stats.update(n_programmed=n, n_converged=conv, n_missed=n - conv, crossbars=int(targets.shape[0]))
    g = result.conductances
    if targets.shape[0] == 2:
        d_t, d_a = targets[0] - targets[1], g[0] - g[1]
    else:
        ref = float(g_ref) if g_ref is not None else 0.0
        d_t, d_a = targets[0] - ref, g[0] - ref
    norm = float(np.linalg.norm(d_t))
    stats["weight_error"] = float(np.linalg.norm(d_a - d_t)) / norm if norm > 0 else float(np.linalg.norm(d_a - d_t))
    return stats


class ProgramDevices(Pass):
    name = "program_devices"

    def run(self, ctx: CompileContext) -> None:
        from memcc.programming import program_ideal, program_naive, relative_error

        todo = [rec for rec in ctx.layers if rec.mapped and rec.programming is None]
        if not todo:
            return
        device, method = ctx.device, ctx.programming
        opts = dict(ctx.options.programming_options or {})
        nominal = ctx.nominal_device
        g_off, g_on = float(nominal.g_off), float(nominal.g_on)
        init_index = {t.name: i for i, t in enumerate(ctx.graph.initializer)}
        bar, update = _progress(ctx, sum(rec.devices for rec in todo))
        settings: dict = {}
        try:
            for rec in todo:
                G = numpy_helper.to_array(ctx.graph.initializer[init_index[rec.weight]])
                targets = np.clip(G.astype(np.float64), g_off, g_on)
                model = sample_layer_devices(device, targets.size, ctx.options.seed, rec.node)
                if method == "naive":
                    res = program_naive(model, targets, progress=update, **opts)
                    settings = dict(res.settings, tolerance=res.tolerance, max_pulses=res.max_pulses)
                else:
                    res = program_ideal(model, targets)
                    if update is not None:
                        update(targets.size)
                ctx.replace_initializer(rec.weight, res.conductances.astype(np.float32), init_index[rec.weight])
                rec.programming = layer_stats(res, targets, rec.g_ref)
                ctx.report.programmed.append(LayerDevices(
                    node=rec.node, source=rec.source,
                    errors=relative_error(res.conductances, res.targets).astype(np.float32).reshape(-1),
                    converged=res.converged.reshape(-1), pulses=res.pulses.astype(np.int32).reshape(-1),
                    out_of_range=res.out_of_range.reshape(-1), tolerance=res.tolerance, method=res.method,
                ))
        finally:
            if bar is not None:
                bar.close()
        ctx.report.programming = _summary(ctx, device, nominal, method, settings)
        if device.name == "stanford_pku" and np.any(np.asarray(device.parameters().get("model_switch", 0)) == 1):
            ctx.report.notes.append(
                "stanford_pku with model_switch=1 draws unseeded switching noise: the conductances "
                "are not reproducible from the seed"
            )


def _progress(ctx: CompileContext, total: int):
    show = ctx.progress
    if show is False or total == 0:
        return None, None
    if show is None:
        import sys

        if not (hasattr(sys.stderr, "isatty") and sys.stderr.isatty()):
            return None, None
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc="memcc: programming devices", unit="dev", unit_scale=True,
               delay=0 if show else 1.0)
    lock = threading.Lock()

    def update(k: int) -> None:  # called from programming's worker threads
        with lock:
            bar.update(k)

    return bar, update


def _parameters(device) -> dict:
    from memcc.devices.parameters import Distribution

    out = {}
    for k, v in device.parameters().items():
        if isinstance(v, Distribution):
            out[k] = {"mean": v.mean, "std": v.std, "min": v.min if math.isfinite(v.min) else None,
                      "max": v.max if math.isfinite(v.max) else None}
        elif isinstance(v, np.ndarray):
            out[k] = {"per_device": int(v.size), "mean": float(v.mean()) if v.size else None}
        else:
            out[k] = v
    return out


def _summary(ctx: CompileContext, device, nominal, method: str, settings: dict) -> dict:
    from memcc.programming import summarize

    layers = ctx.report.programmed
    err = np.concatenate([d.errors for d in layers]) if layers else np.zeros(0, np.float32)
    conv = sum(int(np.count_nonzero(d.converged)) for d in layers)
    n = int(err.size)
    pulses = np.concatenate([d.pulses for d in layers]) if layers else np.zeros(0, np.int32)
    tol = layers[0].tolerance if layers else 0.0
    finite = err[np.isfinite(err)].astype(np.float64)
    total = summarize(1.0 + finite, np.ones_like(finite), tolerance=tol)
    total["n_devices"] = n
    seconds = sum(float(m.programming.get("seconds", 0.0)) for m in ctx.layers if m.programming)
    total.update(
        method=method, n_programmed=n, n_converged=conv, n_missed=n - conv,
        fraction_converged=conv / n if n else 1.0,
        n_budget_exhausted=sum(int(m.programming.get("n_budget_exhausted", 0)) for m in ctx.layers if m.programming),
        n_out_of_range=sum(int(np.count_nonzero(d.out_of_range)) for d in layers),
        mean_pulses=float(pulses.mean()) if pulses.size else 0.0,
        max_pulses_used=int(pulses.max()) if pulses.size else 0,
        seconds=seconds, devices_per_second=n / seconds if seconds > 0 else None,
    )
    if finite.size:
        counts, edges = np.histogram(finite, bins=HISTOGRAM_BINS)
    else:
        counts, edges = np.zeros(0, np.int64), np.zeros(0)
    return {
        "device": device.name,
        "method": method,
        "seed": int(ctx.options.seed),
        "parameters": _parameters(device),
        "stochastic": bool(device.is_stochastic),
        "nominal": {"r_on": float(nominal.r_on), "r_off": float(nominal.r_off),
                    "g_on": float(nominal.g_on), "g_off": float(nominal.g_off)},
        "settings": settings,
        "total": total,
        "histogram": {"quantity": "relative error (achieved - target) / target",
                      "bin_edges": edges.tolist(), "counts": counts.tolist()},
    }
