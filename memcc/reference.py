"""Plain NumPy reference of `ai.memcc::MemristiveMatMul` (docs/op-spec.md), the oracle of memcc's tests.

Everything here follows the text of the spec step by step and favours readability over speed; it
computes in float64 and returns float32. Public pieces:

- `memristive_matmul(X, G, bias=None, **attributes)`: the whole operator (matmul and conv mode).
- `linear_quantize(values, bits, overflow_rate=0.0)`: the spec's `Quant`, over one read.
- `conv_geometry(spatial_shape, kernel_shape, ...)`: output sizes and pads of conv mode;
  `pooled_shape(out_shape, max_pool)`: the sizes after the max pooling of step 10.
- `validate_attributes(attributes)`: the attribute constraints, with defaults filled in.
- `philox4x32_10(counter, key)` and `counter_normal(key, c0, c1, c2, c3)`: the spec's
  counter-based normal (read noise, drift exponents), vectorised over counters.
- `drifted_conductances(G, t, **attributes)`: G' of the spec's "Drift (retention)".
- `MemristiveMatMul` (alias `MemristiveMatMulOp`): an `onnx.reference` operator so that
  `onnx.reference.ReferenceEvaluator(model, new_ops=[MemristiveMatMul])` runs compiled models
  without memcc's C++ library.

Every violated constraint raises `ValueError` naming the attribute or input and the constraint.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

OP_DOMAIN = "ai.memcc"
OP_TYPE = "MemristiveMatMul"

AUTO_PAD_VALUES = ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")
QUANTIZATION_VALUES = ("linear",)
ACTIVATION_VALUES = ("NONE", "RELU")

#: The attributes of the op and their defaults (None: required or "absent").
ATTRIBUTE_DEFAULTS = {
    "weight_scale": None,
    "g_ref": 0.0,
    "tile_shape": (0, 0),
    "max_input_voltage": 0.3,
    "input_range": 0.0,
    "dac_bits": 0,
    "adc_bits": 0,
    "adc_overflow_rate": 0.0,
    "quantization": "linear",
    "iv_a": 0.0,
    "iv_b": 0.0,
    "read_noise_std": 0.0,
    "noise_seed": 0,
    "drift_nu": 0.0,
    "drift_nu_std": 0.0,
    "drift_t0": 1.0,
    "drift_seed": 0,
    "kernel_shape": None,
    "strides": None,
    "pads": None,
    "dilations": None,
    "group": 1,
    "auto_pad": "NOTSET",
    "activation": "NONE",
    "max_pool": None,
}

_CONV_ONLY = ("strides", "pads", "dilations", "group", "auto_pad", "max_pool")


# --------------------------------------------------------------------------------------------
# Attribute validation
# --------------------------------------------------------------------------------------------


def _finite_float(name: str, value) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"attribute {name!r} must be a float, got {value!r}") from None
    if not math.isfinite(v):
        raise ValueError(f"attribute {name!r} must be finite, got {v}")
    return v


def _int(name: str, value) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"attribute {name!r} must be an int, got {value!r}")
    return int(value)


def _ints(name: str, value) -> tuple[int, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray)):
        raise ValueError(f"attribute {name!r} must be a list of ints, got {value!r}")
    return tuple(_int(name, v) for v in value)


def _string(name: str, value) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if not isinstance(value, str):
        raise ValueError(f"attribute {name!r} must be a string, got {value!r}")
    return value


def _bits(name: str, value) -> int:
    b = _int(name, value)
    if b != 0 and not 2 <= b <= 24:
        raise ValueError(f"attribute {name!r} must be 0 or in 2..24, got {b}")
    return b


def validate_attributes(attributes: dict) -> dict:
    """Check the attributes against docs/op-spec.md and return them with defaults filled in.

    Conv-mode attributes are returned with their defaults expanded to `n` values once
    `kernel_shape` is known; in matmul mode they are None. `max_pool` has no default: it stays
    None unless given (no pooling). Raises ValueError.
    """
    unknown = sorted(set(attributes) - set(ATTRIBUTE_DEFAULTS))
    if unknown:
        raise ValueError(f"unknown attribute(s) {', '.join(map(repr, unknown))}")
    a = {k: attributes.get(k, d) for k, d in ATTRIBUTE_DEFAULTS.items()}
    # Treat an explicit None like an absent attribute.
    a = {k: (ATTRIBUTE_DEFAULTS[k] if v is None else v) for k, v in a.items()}

    if a["weight_scale"] is None:
        raise ValueError("attribute 'weight_scale' is required")
    a["weight_scale"] = _finite_float("weight_scale", a["weight_scale"])
    if not a["weight_scale"] > 0:
        raise ValueError(f"attribute 'weight_scale' must be > 0, got {a['weight_scale']}")
    a["g_ref"] = _finite_float("g_ref", a["g_ref"])

    tile = _ints("tile_shape", a["tile_shape"])
    if len(tile) != 2 or min(tile) < 0:
        raise ValueError(f"attribute 'tile_shape' must be two values >= 0, got {list(tile)}")
    a["tile_shape"] = tile

    a["max_input_voltage"] = _finite_float("max_input_voltage", a["max_input_voltage"])
    if not a["max_input_voltage"] > 0:
        raise ValueError(f"attribute 'max_input_voltage' must be > 0, got {a['max_input_voltage']}")
    a["input_range"] = _finite_float("input_range", a["input_range"])
    if a["input_range"] < 0:
        raise ValueError(f"attribute 'input_range' must be >= 0, got {a['input_range']}")
    a["dac_bits"] = _bits("dac_bits", a["dac_bits"])
    a["adc_bits"] = _bits("adc_bits", a["adc_bits"])
    a["adc_overflow_rate"] = _finite_float("adc_overflow_rate", a["adc_overflow_rate"])
    if not 0.0 <= a["adc_overflow_rate"] < 1.0:
        raise ValueError(
            f"attribute 'adc_overflow_rate' must satisfy 0 <= q < 1, got {a['adc_overflow_rate']}"
        )
    a["quantization"] = _string("quantization", a["quantization"])
    if a["quantization"] not in QUANTIZATION_VALUES:
        raise ValueError(
            f"attribute 'quantization' must be one of {list(QUANTIZATION_VALUES)}, "
            f"got {a['quantization']!r}"
        )
    a["activation"] = _string("activation", a["activation"])
    if a["activation"] not in ACTIVATION_VALUES:
        raise ValueError(
            f"attribute 'activation' must be one of {list(ACTIVATION_VALUES)}, got {a['activation']!r}"
        )

    # Run-time non-idealities.
    a["iv_a"] = _finite_float("iv_a", a["iv_a"])
    a["iv_b"] = _finite_float("iv_b", a["iv_b"])
    if a["iv_b"] < 0:
        raise ValueError(f"attribute 'iv_b' must be >= 0, got {a['iv_b']}")
    if a["iv_b"] > 0 and not a["iv_a"] > 0:
        raise ValueError(f"attribute 'iv_a' must be > 0 when iv_b > 0, got {a['iv_a']}")
    for name in ("read_noise_std", "drift_nu", "drift_nu_std"):
        a[name] = _finite_float(name, a[name])
        if a[name] < 0:
            raise ValueError(f"attribute {name!r} must be >= 0, got {a[name]}")
    a["drift_t0"] = _finite_float("drift_t0", a["drift_t0"])
    if not a["drift_t0"] > 0:
        raise ValueError(f"attribute 'drift_t0' must be > 0, got {a['drift_t0']}")
    for name in ("noise_seed", "drift_seed"):
        a[name] = _int(name, a[name])
        if a[name] < 0:
            raise ValueError(f"attribute {name!r} must be >= 0, got {a[name]}")

    if a["kernel_shape"] is None:
        present = [k for k in _CONV_ONLY if k in attributes and attributes[k] is not None]
        if present:
            raise ValueError(
                f"attribute(s) {', '.join(map(repr, present))} are only allowed in conv mode "
                "(with 'kernel_shape')"
            )
        return a

    ks = _ints("kernel_shape", a["kernel_shape"])
    n = len(ks)
    if n not in (1, 2, 3) or min(ks) < 1:
        raise ValueError(f"attribute 'kernel_shape' must be 1 to 3 values >= 1, got {list(ks)}")
    a["kernel_shape"] = ks
    for name, default, count in (("strides", 1, n), ("dilations", 1, n), ("pads", 0, 2 * n)):
        vals = (default,) * count if a[name] is None else _ints(name, a[name])
        if len(vals) != count:
            raise ValueError(f"attribute {name!r} must have {count} values, got {list(vals)}")
        if name == "pads":
            if min(vals) < 0:
                raise ValueError(f"attribute 'pads' must be values >= 0, got {list(vals)}")
        elif min(vals) < 1:
            raise ValueError(f"attribute {name!r} must be values >= 1, got {list(vals)}")
        a[name] = vals
    if a["max_pool"] is not None:
        window = _ints("max_pool", a["max_pool"])
        if len(window) != n:
            raise ValueError(f"attribute 'max_pool' must have {n} values, got {list(window)}")
        if min(window) < 1:
            raise ValueError(f"attribute 'max_pool' must be values >= 1, got {list(window)}")
        a["max_pool"] = window
    a["group"] = _int("group", a["group"])
    if a["group"] < 1:
        raise ValueError(f"attribute 'group' must be >= 1, got {a['group']}")
    a["auto_pad"] = _string("auto_pad", a["auto_pad"])
    if a["auto_pad"] not in AUTO_PAD_VALUES:
        raise ValueError(
            f"attribute 'auto_pad' must be one of {list(AUTO_PAD_VALUES)}, got {a['auto_pad']!r}"
        )
    if a["auto_pad"] != "NOTSET" and attributes.get("pads") is not None:
        raise ValueError(f"attribute 'pads' must be absent when auto_pad is {a['auto_pad']!r}")
    return a


# --------------------------------------------------------------------------------------------
# The counter-based normal (Philox4x32-10 + Box-Muller)
# --------------------------------------------------------------------------------------------

_PHILOX_M = (0xD2511F53, 0xCD9E8D57)
_PHILOX_W = (0x9E3779B9, 0xBB67AE85)
_MASK32 = 0xFFFFFFFF


def philox4x32_10(counter, key) -> np.ndarray:
    """Philox4x32-10 of `counter` (array [..., 4] of 32-bit words) under `key` (two 32-bit words).

    Vectorised over the leading axes; uint32 words, 64-bit products. Returns uint32 [..., 4].
    """
    ctr = np.asarray(counter, dtype=np.uint64) & np.uint64(_MASK32)
    if ctr.shape[-1:] != (4,):
        raise ValueError(f"counter must have 4 words in its last axis, got shape {ctr.shape}")
    x = [ctr[..., i] for i in range(4)]
    k0, k1 = int(key[0]) & _MASK32, int(key[1]) & _MASK32
    m0, m1, mask = np.uint64(_PHILOX_M[0]), np.uint64(_PHILOX_M[1]), np.uint64(_MASK32)
    for _ in range(10):
        p0 = x[0] * m0  # < 2^64: exact in uint64
        p1 = x[2] * m1
        hi0, lo0 = p0 >> np.uint64(32), p0 & mask
        hi1, lo1 = p1 >> np.uint64(32), p1 & mask
        x = [hi1 ^ x[1] ^ np.uint64(k0), lo1, hi0 ^ x[3] ^ np.uint64(k1), lo0]
        k0 = (k0 + _PHILOX_W[0]) & _MASK32
        k1 = (k1 + _PHILOX_W[1]) & _MASK32
    return np.stack(x, axis=-1).astype(np.uint32)


def counter_normal(key: int, c0, c1, c2, c3) -> np.ndarray:
    """The spec's `normal(key; c0, c1, c2, c3)`, broadcast over array counters (float64).

    Key split `(key mod 2^32, key div 2^32)`, counter words mod 2^32; Philox of
    `(c0, c1, c2, c3 // 4)` gives four normals (two Box-Muller pairs with u = (x + 0.5) / 2^32:
    rho1 cos, rho1 sin, rho2 cos, rho2 sin) and the value is number `c3 % 4` of them.
    """
    key = int(key)
    words = np.broadcast_arrays(*(np.asarray(c, dtype=np.int64) for c in (c0, c1, c2, c3)))
    words = [w.astype(np.uint64) & np.uint64(_MASK32) for w in words]
    lane = (words[3] & np.uint64(3)).astype(np.int64)
    words[3] = words[3] >> np.uint64(2)
    x = philox4x32_10(np.stack(words, axis=-1), (key & _MASK32, (key >> 32) & _MASK32))
    u = (x.astype(np.float64) + 0.5) / 2.0**32
    rho1 = np.sqrt(-2.0 * np.log(u[..., 0]))
    rho2 = np.sqrt(-2.0 * np.log(u[..., 2]))
    four = np.stack(
        [rho1 * np.cos(2.0 * np.pi * u[..., 1]), rho1 * np.sin(2.0 * np.pi * u[..., 1]),
         rho2 * np.cos(2.0 * np.pi * u[..., 3]), rho2 * np.sin(2.0 * np.pi * u[..., 3])],
        axis=-1,
    )
    return np.take_along_axis(four, lane[..., None], axis=-1)[..., 0]


# --------------------------------------------------------------------------------------------
# Run-time non-idealities: drift and the I-V function
# --------------------------------------------------------------------------------------------


def _time(T, a: dict) -> float:
    """t of the spec: T (scalar or [1], finite, >= 0) or drift_t0 when absent."""
    if T is None:
        return a["drift_t0"]
    T = np.asarray(T, dtype=np.float64)
    if T.size != 1 or T.ndim > 1:
        raise ValueError(f"input 'T' must be a scalar or have shape [1], got {list(T.shape)}")
    t = float(T.reshape(()))
    if not (math.isfinite(t) and t >= 0):
        raise ValueError(f"input 'T' (time since programming, s) must be finite and >= 0, got {t}")
    return t


def _drift(G: np.ndarray, t: float, a: dict) -> np.ndarray:
    """G' = G tau^(-nu), nu = max(0, drift_nu + drift_nu_std z), z = normal(drift_seed; 0, s, k, n)."""
    if a["drift_nu"] == 0 and a["drift_nu_std"] == 0:
        return G
    tau = max(t, a["drift_t0"]) / a["drift_t0"]
    nu = np.full(G.shape, a["drift_nu"])
    if a["drift_nu_std"] > 0:
        s, k, n = np.indices(G.shape)
        z = counter_normal(a["drift_seed"], 0, s, k, n)
        nu = np.maximum(0.0, a["drift_nu"] + a["drift_nu_std"] * z)
    return G * tau ** (-nu)


def drifted_conductances(G, T=None, **attributes) -> np.ndarray:
    """The drifted conductances G' [S, K, N] (float64) the op reads at time T (None: drift_t0)."""
    a = validate_attributes({"weight_scale": 1.0, **attributes})
    G = np.asarray(G, dtype=np.float64)
    return _drift(G, _time(T, a), a)


def _iv(v: np.ndarray, a: dict) -> np.ndarray:
    """f(v) = iv_a sinh(iv_b v), or v itself when iv_b = 0."""
    if a["iv_b"] > 0:
        return a["iv_a"] * np.sinh(a["iv_b"] * v)
    return v


# --------------------------------------------------------------------------------------------
# The linear quantizer
# --------------------------------------------------------------------------------------------


def _quantize_reads(reads: np.ndarray, bits: int, overflow_rate: float) -> np.ndarray:
    """Apply `Quant` to each row of `reads` (shape [R, m]) independently, as float64."""
    reads = np.asarray(reads, dtype=np.float64)
    m = reads.shape[-1]
    if reads.size == 0:
        return reads.copy()
    # Step 1: Q is the t-th smallest magnitude of each read.
    t = m - 1 - math.floor(overflow_rate * m)
    t = min(max(t, 0), m - 1)
    magnitudes = np.sort(np.abs(reads), axis=-1)
    Q = magnitudes[:, t]
    # Step 3: c = the smallest integer with 2**c >= Q. frexp writes Q = f * 2**e with
    # 0.5 <= f < 1, so c = e, except c = e - 1 when Q is exactly a power of two (f == 0.5).
    safe_Q = np.where(Q > 0, Q, 1.0)
    f, e = np.frexp(safe_Q)
    c = np.where(f == 0.5, e - 1, e)
    delta = np.ldexp(1.0, (c + 1 - bits).astype(np.int64))[:, None]
    # Step 4: round half to even, clamp to the b-bit signed range.
    levels = np.clip(np.round(reads / delta), -(2.0 ** (bits - 1)), 2.0 ** (bits - 1) - 1)
    out = levels * delta
    # Step 2: a read whose Q is 0 gives all zeros.
    out[Q == 0] = 0.0
    return out


def linear_quantize(values, bits: int, overflow_rate: float = 0.0) -> np.ndarray:
    """The spec's linear quantizer `Quant(values, bits, overflow_rate)` over one read.

    All entries of `values` (any shape) form one read; the result has the same shape, float64.
    """
    bits = _bits("bits", bits)
    if bits == 0:
        raise ValueError("linear_quantize needs bits in 2..24")
    q = _finite_float("overflow_rate", overflow_rate)
    if not 0.0 <= q < 1.0:
        raise ValueError(f"overflow_rate must satisfy 0 <= q < 1, got {q}")
    a = np.asarray(values, dtype=np.float64)
    return _quantize_reads(a.reshape(1, -1), bits, q).reshape(a.shape)


# --------------------------------------------------------------------------------------------
# Conv geometry and im2col
# --------------------------------------------------------------------------------------------


def conv_geometry(
    spatial_shape: Sequence[int],
    kernel_shape: Sequence[int],
    strides: Sequence[int] | None = None,
    pads: Sequence[int] | None = None,
    dilations: Sequence[int] | None = None,
    auto_pad: str = "NOTSET",
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """Output sizes and begin/end pads of conv mode (the ONNX `Conv` rules of the spec).

    Returns `(out_shape, pad_begin, pad_end)`; raises ValueError if an output size is < 1.
    """
    n = len(kernel_shape)
    strides = tuple(strides) if strides is not None else (1,) * n
    dilations = tuple(dilations) if dilations is not None else (1,) * n
    pads = tuple(pads) if pads is not None else (0,) * (2 * n)
    out, begin, end = [], [], []
    for d in range(n):
        size = int(spatial_shape[d])
        extent = (kernel_shape[d] - 1) * dilations[d] + 1
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            o = -(-size // strides[d])  # ceil
            total = max(0, (o - 1) * strides[d] + extent - size)
            b = total // 2 if auto_pad == "SAME_UPPER" else total - total // 2
            e = total - b
        else:
            b, e = (0, 0) if auto_pad == "VALID" else (pads[d], pads[n + d])
            o = (size + b + e - extent) // strides[d] + 1
        if o < 1:
            raise ValueError(
                f"conv mode: output size along spatial axis {d} would be {o} (input {size}, "
                f"kernel extent {extent}, pads {b}+{e}, stride {strides[d]}); it must be >= 1"
            )
        out.append(o)
        begin.append(b)
        end.append(e)
    return tuple(out), tuple(begin), tuple(end)


def _im2col(X: np.ndarray, a: dict, out_shape, pad_begin, pad_end) -> np.ndarray:
    """Input vectors of conv mode: shape [B, group, prod(out), K] (float64)."""
    B, C = X.shape[:2]
    n = len(a["kernel_shape"])
    group = a["group"]
    ks, st, dil = a["kernel_shape"], a["strides"], a["dilations"]
    padded = np.pad(X, [(0, 0), (0, 0)] + [(pad_begin[d], pad_end[d]) for d in range(n)])
    offsets = list(np.ndindex(*ks))  # row-major order: flat(o)
    cols = np.empty((B, C, len(offsets)) + tuple(out_shape), dtype=np.float64)
    for idx, o in enumerate(offsets):
        # i_d = p_d * stride_d - padbegin_d + o_d * dilation_d, shifted by padbegin_d in `padded`.
        slices = tuple(
            slice(o[d] * dil[d], o[d] * dil[d] + (out_shape[d] - 1) * st[d] + 1, st[d])
            for d in range(n)
        )
        cols[:, :, idx] = padded[(slice(None), slice(None)) + slices]
    P = int(np.prod(out_shape))
    cg = C // group
    # [B, group, C/group, offsets, P] -> [B, group, P, C/group * offsets]; k = c * prod(ks) + flat(o)
    cols = cols.reshape(B, group, cg, len(offsets), P)
    return cols.transpose(0, 1, 4, 2, 3).reshape(B, group, P, cg * len(offsets))


# --------------------------------------------------------------------------------------------
# The crossbar computation of one set of input vectors
# --------------------------------------------------------------------------------------------


def _crossbar(x: np.ndarray, D: np.ndarray, a: dict, noise: dict | None = None) -> np.ndarray:
    """Steps 1-8 (without the bias) for input vectors x [R, K] against D [K, N']: [R, N'].

    `noise` (read noise on): ``var`` [K, N'] = sigma^2 sum_s G'^2 of these columns, ``q`` [R] the
    vectors' indices, ``j0`` the first column's index in G, ``key`` and ``c`` of the stream.
    """
    R, K = x.shape
    n_cols = D.shape[1]
    if R == 0:
        return np.zeros((0, n_cols))
    # 1. Input scale.
    if a["input_range"] > 0:
        s = np.full(R, a["input_range"])
    else:
        s = np.max(np.abs(x), axis=1) if K > 0 else np.zeros(R)
    zero = s == 0
    s_safe = np.where(zero, 1.0, s)
    # 2. Normalise.
    u = np.clip(x / s_safe[:, None], -1.0, 1.0)
    # 3. DAC.
    if a["dac_bits"] > 0:
        L = 2.0 ** (a["dac_bits"] - 1) - 1
        u = np.round(u * L) / L
    # 4. Voltages, and the I-V function the devices apply to them.
    v = u * a["max_input_voltage"]
    fv = _iv(v, a)
    # 5.-7. Tile MACs, ADC per tile read, digital sum.
    tr = a["tile_shape"][0] or max(K, 1)
    tc = a["tile_shape"][1] or max(n_cols, 1)
    acc = np.zeros((R, n_cols))
    for r0 in range(0, max(K, 1), tr):
        rows = slice(r0, min(K, r0 + tr))
        current = fv[:, rows] @ D[rows, :]  # I_{r,j}, one row per input vector
        if noise is not None and a["adc_bits"] > 0:
            var = (fv[:, rows] ** 2) @ noise["var"][rows, :]
            cols_g = noise["j0"] + np.arange(n_cols)
            z = counter_normal(noise["key"], noise["c"], noise["q"][:, None], r0 // tr, cols_g[None, :])
            current = current + np.sqrt(var) * z
        if a["adc_bits"] > 0:
            for c0 in range(0, n_cols, tc):
                cols = slice(c0, min(n_cols, c0 + tc))
                current[:, cols] = _quantize_reads(
                    current[:, cols], a["adc_bits"], a["adc_overflow_rate"]
                )
        acc += current
    if noise is not None and a["adc_bits"] == 0:
        # No ADC: the row tiles' Gaussian terms are only summed, so one term per vector and column
        # with the total variance (z = normal(key; c, q, 0, j')).
        var = (fv**2) @ noise["var"]
        cols_g = noise["j0"] + np.arange(n_cols)
        acc += np.sqrt(var) * counter_normal(noise["key"], noise["c"], noise["q"][:, None], 0, cols_g[None, :])
    # 8. Back to weights.
    y = acc * (a["weight_scale"] * s_safe / a["max_input_voltage"])[:, None]
    y[zero] = 0.0
    return y


def memristive_matmul(X, G, bias=None, T=None, *, execution: int = 0, **attributes) -> np.ndarray:
    """Evaluate `ai.memcc::MemristiveMatMul` on NumPy arrays, as docs/op-spec.md defines it.

    X: activations ([..., K] in matmul mode, [B, C, D1..Dn] in conv mode); G: conductances
    [S, K, N], S in {1, 2}; bias: [N] or None (an empty array also means "no bias"); T: the
    optional time since programming (s), scalar or [1]. `execution`: the read-noise counter c,
    the number of earlier executions of the node. Attributes are the spec's, by name.
    Returns float32. Raises ValueError.
    """
    a = validate_attributes(attributes)
    X = np.asarray(X, dtype=np.float64)
    G = np.asarray(G, dtype=np.float64)
    if G.ndim != 3 or G.shape[0] not in (1, 2):
        raise ValueError(f"input 'G' must have shape [S, K, N] with S in {{1, 2}}, got {list(G.shape)}")
    S, K, N = G.shape
    if bias is not None:
        bias = np.asarray(bias, dtype=np.float64)
        if bias.ndim == 1 and bias.shape[0] == 0 and N != 0:
            bias = None
        elif bias.shape != (N,):
            raise ValueError(f"input 'Bias' must have shape [{N}] (N of G), got {list(bias.shape)}")
    # Drift, then the effective differential conductance (the reference column does not drift).
    G = _drift(G, _time(T, a), a)
    D = G[0] - G[1] if S == 2 else G[0] - a["g_ref"]
    var = a["read_noise_std"] ** 2 * np.sum(G * G, axis=0) if a["read_noise_std"] > 0 else None

    def noise_for(q, j0, j1):
        if var is None:
            return None
        return {"var": var[:, j0:j1], "q": q, "j0": j0, "key": a["noise_seed"], "c": int(execution)}

    if a["kernel_shape"] is None:
        if X.ndim < 1:
            raise ValueError("matmul mode: input 'X' must have rank >= 1")
        if X.shape[-1] != K:
            raise ValueError(
                f"matmul mode: last axis of 'X' ({X.shape[-1]}) must equal K = G.shape[1] ({K})"
            )
        R = int(np.prod(X.shape[:-1]))
        y = _crossbar(X.reshape(-1, K), D, a, noise_for(np.arange(R), 0, N))
        if bias is not None:
            y = y + bias
        return _activation(y, a).reshape(X.shape[:-1] + (N,)).astype(np.float32)

    ks = a["kernel_shape"]
    n = len(ks)
    if X.ndim != n + 2:
        raise ValueError(
            f"conv mode: input 'X' must have rank {n + 2} for a {n}-D kernel, got rank {X.ndim}"
        )
    B, C = X.shape[:2]
    group = a["group"]
    if C % group:
        raise ValueError(f"conv mode: group ({group}) must divide the channels C ({C})")
    if N % group:
        raise ValueError(f"conv mode: group ({group}) must divide N ({N})")
    if K != (C // group) * int(np.prod(ks)):
        raise ValueError(
            f"conv mode: K = G.shape[1] ({K}) must equal (C / group) * prod(kernel_shape) "
            f"= {(C // group) * int(np.prod(ks))}"
        )
    out_shape, pb, pe = conv_geometry(
        X.shape[2:], ks, a["strides"], a["pads"], a["dilations"], a["auto_pad"]
    )
    if a["max_pool"] is not None:
        pooled_shape(out_shape, a["max_pool"])  # refuse a too-large window before computing
    cols = _im2col(X, a, out_shape, pb, pe)  # [B, group, P, K]
    P = cols.shape[2]
    ng = N // group
    Y = np.zeros((B, N, P))
    for h in range(group):
        part = D[:, h * ng : (h + 1) * ng]
        # q = (b * group + h) * P + p_flat
        q = ((np.arange(B)[:, None] * group + h) * P + np.arange(P)[None, :]).reshape(-1)
        noise = noise_for(q, h * ng, (h + 1) * ng)
        y = _crossbar(cols[:, h].reshape(B * P, K), part, a, noise).reshape(B, P, ng)
        Y[:, h * ng : (h + 1) * ng, :] = y.transpose(0, 2, 1)
    if bias is not None:
        Y += bias[None, :, None]
    Y = _activation(Y, a).reshape((B, N) + tuple(out_shape))
    if a["max_pool"] is not None:
        Y = _max_pool(Y, a["max_pool"])
    return Y.astype(np.float32)


def _activation(y: np.ndarray, a: dict) -> np.ndarray:
    """Step 9: the digital activation after the bias (NaN stays NaN)."""
    if a["activation"] == "RELU":
        return np.maximum(y, 0.0)
    return y


def pooled_shape(out_shape: Sequence[int], max_pool: Sequence[int]) -> tuple[int, ...]:
    """Spatial sizes after step 10: floor(out_d / max_pool_d); ValueError if one would be < 1."""
    pooled = tuple(int(o) // int(m) for o, m in zip(out_shape, max_pool))
    if min(pooled) < 1:
        raise ValueError(
            f"conv mode: max_pool {list(max_pool)} is larger than the outputs {list(out_shape)} "
            "(every pooled size floor(out / max_pool) must be >= 1)"
        )
    return pooled


def _max_pool(Y: np.ndarray, window: Sequence[int]) -> np.ndarray:
    """Step 10: max over non-overlapping windows of Y [B, N, out...]; trailing positions dropped.

    A window holding a NaN gives NaN (np.max), one of the results the spec allows.
    """
    B, N = Y.shape[:2]
    pooled = pooled_shape(Y.shape[2:], window)
    Y = Y[(slice(None), slice(None)) + tuple(slice(0, t * m) for t, m in zip(pooled, window))]
    # Split every spatial axis d into (t_d, m_d) and reduce the window axes.
    split = [B, N] + [s for t, m in zip(pooled, window) for s in (t, m)]
    window_axes = tuple(3 + 2 * d for d in range(len(window)))
    return Y.reshape(split).max(axis=window_axes)


# --------------------------------------------------------------------------------------------
# onnx.reference operator
# --------------------------------------------------------------------------------------------

try:
    from onnx.reference.op_run import OpRun
except ImportError:  # pragma: no cover - onnx without the reference runtime
    OpRun = None

if OpRun is not None:

    class MemristiveMatMul(OpRun):
        """`ai.memcc::MemristiveMatMul` for `onnx.reference.ReferenceEvaluator(new_ops=[...])`.

        The evaluator looks operators up by class name, hence the name; `MemristiveMatMulOp`
        is an alias.
        """

        op_domain = OP_DOMAIN

        def _run(self, X, G, Bias=None, T=None, **attributes):
            # c of the read-noise stream: this node's earlier executions (the evaluator keeps
            # one instance per node for its lifetime, like a session).
            c = getattr(self, "_memcc_executions", 0)
            self._memcc_executions = c + 1
            return (memristive_matmul(X, G, Bias, T, execution=c, **attributes),)

    MemristiveMatMulOp = MemristiveMatMul


def evaluator(model, **kwargs):
    """A `ReferenceEvaluator` for `model` that knows `ai.memcc::MemristiveMatMul`."""
    from onnx.reference import ReferenceEvaluator

    new_ops = list(kwargs.pop("new_ops", [])) + [MemristiveMatMul]
    return ReferenceEvaluator(model, new_ops=new_ops, **kwargs)
