"""memcc.config: tile parsing, TOML files, validation and CLI-over-file precedence."""

from __future__ import annotations

import pytest

from memcc import config as cfg
from memcc.errors import ConfigError


@pytest.mark.parametrize(
    "text, expected",
    [
        ("128x128", (128, 128)),
        ("128X64", (128, 64)),
        (" 256 x 32 ", (256, 32)),
        ("128", (128, 128)),
        ("0", (0, 0)),
        ("none", (0, 0)),
        ("None", (0, 0)),
        ("0x64", (0, 64)),
        ([128, 64], (128, 64)),
        ((32, 16), (32, 16)),
        (64, (64, 64)),
        (0, (0, 0)),
    ],
)
def test_parse_tile(text, expected):
    assert cfg.parse_tile(text) == expected


@pytest.mark.parametrize("bad", ["128x", "x", "axb", "1x2x3", "-1x4", "12.5x3", [1, 2, 3], [1.5, 2], True, 3.0])
def test_parse_tile_rejects(bad):
    with pytest.raises(ConfigError, match="tile"):
        cfg.parse_tile(bad)


@pytest.mark.parametrize("bad", ["9223372036854775808", "99999999999999999999x1", [1, 2**63], 2**64])
def test_parse_tile_rejects_sizes_beyond_int64(bad):
    with pytest.raises(ConfigError, match=r"too large; a tile size is at most 9223372036854775807"):
        cfg.parse_tile(bad)
    assert cfg.parse_tile(f"{2**63 - 1}x1") == (2**63 - 1, 1)  # the op's int64 limit itself is fine


@pytest.mark.parametrize("flags, fragment", [
    ({"r_on": "1e-300", "r_off": "1e300"}, r"r_on: 1e-300 ohm gives a conductance of 1e\+300 S, outside float32"),
    ({"r_off": "1e300"}, "r_off: 1e.300 ohm gives a conductance of 1e-300 S"),
    ({"r_on": "1", "r_off": "1.00000001"}, "conductances are equal in float32"),
    ({"max_input_voltage": "1e-300"}, "max_input_voltage: 1e-300 V is outside float32's normal range"),
    ({"max_input_voltage": "1e39"}, "max_input_voltage"),
    ({"input_range": "1e-300"}, "input_range: 1e-300 is outside float32's normal range"),
])
def test_values_the_op_cannot_hold_in_float32_are_refused(flags, fragment):
    with pytest.raises(ConfigError, match=fragment) as info:
        cfg.resolve(None, flags)
    assert "\n" not in str(info.value)


def test_float32_bounds_come_from_float32():
    import numpy as np

    f32 = np.finfo(np.float32)
    assert cfg.F32_MIN == float(f32.tiny) and cfg.F32_MAX == float(f32.max)
    # the extreme accepted resistances give the extreme normal conductances
    s = cfg.resolve(None, {"r_on": cfg.R_MIN * 1.000001, "r_off": cfg.R_MAX / 1.000001,
                           "max_input_voltage": cfg.F32_MAX, "input_range": cfg.F32_MIN})
    assert np.isfinite(np.float32(1 / s["r_on"])) and np.float32(1 / s["r_off"]) >= f32.tiny
    assert cfg.resolve(None, {"input_range": "0"})["input_range"] == 0.0


def write(tmp_path, text):
    p = tmp_path / "memcc.toml"
    p.write_text(text)
    return p


def test_load_all_keys(tmp_path):
    p = write(
        tmp_path,
        """
device = "ideal"
tile = "128x64"
dac_bits = 8
adc_bits = 6
adc_overflow_rate = 0.01
r_on = 1e4
r_off = 1e6
seed = 7
scheme = "single"
max_input_voltage = 0.2
input_range = 2.5
""",
    )
    s = cfg.load_config(p)
    assert s == {
        "device": "ideal",
        "tile": (128, 64),
        "dac_bits": 8,
        "adc_bits": 6,
        "adc_overflow_rate": 0.01,
        "r_on": 1e4,
        "r_off": 1e6,
        "seed": 7,
        "scheme": "single",
        "max_input_voltage": 0.2,
        "input_range": 2.5,
    }


def test_tile_as_array_and_dashed_keys_and_table(tmp_path):
    p = write(tmp_path, 'tile = [256, 128]\n[compile]\ndac-bits = 4\n')
    assert cfg.load_config(p) == {"tile": (256, 128), "dac_bits": 4}


def test_unknown_key_named(tmp_path):
    p = write(tmp_path, 'device = "ideal"\ndac_bitz = 8\n')
    with pytest.raises(ConfigError, match="dac_bitz") as info:
        cfg.load_config(p)
    assert "memcc.toml" in str(info.value)
    assert "dac_bits" in str(info.value)  # lists the known keys


@pytest.mark.parametrize(
    "line, key",
    [
        ("dac_bits = 1", "dac_bits"),
        ("dac_bits = 25", "dac_bits"),
        ('adc_bits = "eight"', "adc_bits"),
        ("adc_bits = true", "adc_bits"),
        ("adc_overflow_rate = 1.0", "adc_overflow_rate"),
        ("adc_overflow_rate = -0.1", "adc_overflow_rate"),
        ("max_input_voltage = 0", "max_input_voltage"),
        ("max_input_voltage = nan", "max_input_voltage"),
        ("input_range = -1", "input_range"),
        ("r_on = -5", "r_on"),
        ('scheme = "triple"', "scheme"),
        ("seed = -1", "seed"),
        ("seed = 1.5", "seed"),
        ('tile = "big"', "tile"),
        ("device = 3", "device"),
    ],
)
def test_bad_values_name_the_key(tmp_path, line, key):
    p = write(tmp_path, line + "\n")
    with pytest.raises(ConfigError, match=key):
        cfg.load_config(p)


def test_r_on_must_be_below_r_off(tmp_path):
    p = write(tmp_path, "r_on = 1e6\nr_off = 1e4\n")
    with pytest.raises(ConfigError, match="r_on"):
        cfg.load_config(p)
    with pytest.raises(ConfigError, match="r_on"):
        cfg.resolve({"r_on": 1e4}, {"r_off": 1e3})


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        cfg.load_config(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="directory"):
        cfg.load_config(tmp_path)
    p = write(tmp_path, "device = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        cfg.load_config(p)


def test_defaults():
    s = cfg.resolve()
    assert s == cfg.DEFAULTS
    assert set(s) == {
        "device", "scheme", "tile", "dac_bits", "adc_bits", "adc_overflow_rate",
        "max_input_voltage", "input_range", "r_on", "r_off", "seed",
        "d2d_std", "programming", "device_params", "programming_options", "nonidealities",
    }


def test_device_and_programming_tables(tmp_path):
    from memcc.devices import Distribution

    p = write(tmp_path, (
        'd2d_std = 0.2\n'
        '[device]\nname = "vteam"\nr_on = "50:std=10:min=1"\nr_off = {mean = 1000, std = 100}\n'
        '[programming]\nmethod = "naive"\ntolerance = 0.02\nmax_pulses = 50\n'
    ))
    file_settings = cfg.load_config(p)
    s = cfg.resolve(file_settings, {"device_params": ["r_off=900"], "programming_options": {"max_pulses": 80}})
    assert s["device"] == "vteam" and s["programming"] == "naive" and s["d2d_std"] == 0.2
    # flags override one parameter of the file's table, the others stay
    assert s["device_params"] == {"r_on": Distribution(50, 10, 1), "r_off": 900.0}
    assert s["programming_options"] == {"tolerance": 0.02, "max_pulses": 80}


@pytest.mark.parametrize("text, fragment", [
    ('[device]\nr_on = 5\n', "name"),
    ('[device]\nname = "vteam"\nr_on = {mean = 5, spread = 1}\n', "spread"),
    ('[programming]\ntolerence = 0.1\n', "tolerence"),
    ('programming = "careful"\n', "naive or ideal"),
    ('d2d_std = -0.1\n', "d2d_std"),
])
def test_device_and_programming_errors(tmp_path, text, fragment):
    with pytest.raises(ConfigError, match=fragment):
        cfg.load_config(write(tmp_path, text))


def test_programming_table_errors_use_its_toml_names(tmp_path):
    with pytest.raises(ConfigError) as info:
        cfg.load_config(write(tmp_path, '[programming]\nname = "naive"\n'))
    msg = str(info.value)
    assert "[programming]: unknown key 'name'" in msg and "method = " in msg
    assert "programming_options" not in msg
    listed = msg.split("accepted keys: ")[1].split(", ")
    from memcc.passes.base import PROGRAMMING_OPTIONS

    assert listed == ["method", *PROGRAMMING_OPTIONS]
    with pytest.raises(ConfigError, match=r"\[programming\] method: must be naive or ideal"):
        cfg.load_config(write(tmp_path, '[programming]\nmethod = "careful"\n'))
    with pytest.raises(ConfigError, match="did you mean 'tolerance'"):
        cfg.load_config(write(tmp_path, '[programming]\ntolerence = 0.1\n'))


def test_unknown_programming_keys_read_alike_wherever_given(tmp_path):
    """The TOML table, the programming_options setting and CompileOptions check their keys with
    one helper: each names every unknown key, guesses the first and lists the accepted ones."""
    from memcc.passes import CompileOptions
    from memcc.passes.base import PROGRAMMING_OPTIONS

    known = ", ".join(PROGRAMMING_OPTIONS)
    with pytest.raises(ConfigError) as info:
        cfg.load_config(write(tmp_path, '[programming]\ntolerence = 0.1\nmax_pulse = 3\n'))
    assert str(info.value).endswith(
        "[programming]: unknown keys 'max_pulse', 'tolerence' (did you mean 'max_pulses'?); "
        f"accepted keys: method, {known}")
    with pytest.raises(ConfigError) as info:
        cfg.validate({"programming_options": {"tolerence": 0.1}})
    assert str(info.value) == (
        f"programming_options: unknown option 'tolerence' (did you mean 'tolerance'?); known options: {known}")
    with pytest.raises(ConfigError) as info:
        CompileOptions(programming_options={"tolerence": 0.1, "zzz": 1}).validated()
    assert str(info.value) == (
        f"unknown programming options 'tolerence', 'zzz' (did you mean 'tolerance'?); known: {known}")
    with pytest.raises(ConfigError) as info:  # no close match: no guess
        CompileOptions(programming_options={"zzz": 1}).validated()
    assert str(info.value) == f"unknown programming option 'zzz'; known: {known}"


def test_precedence_flags_over_file(tmp_path):
    p = write(tmp_path, 'tile = "64x64"\ndac_bits = 8\nadc_bits = 8\nseed = 3\n')
    file_settings = cfg.load_config(p)
    # CLI flags arrive as strings, None when not given
    s = cfg.resolve(file_settings, {"tile": "128x128", "dac_bits": None, "adc_bits": "4", "seed": None})
    assert s["tile"] == (128, 128)  # flag wins
    assert s["dac_bits"] == 8  # file value kept when the flag is absent
    assert s["adc_bits"] == 4
    assert s["seed"] == 3
    assert s["device"] == "ideal"  # default when neither sets it


def test_flag_values_validated():
    with pytest.raises(ConfigError, match="adc_overflow_rate"):
        cfg.resolve(None, {"adc_overflow_rate": "2"})
    with pytest.raises(ConfigError, match="dac_bits"):
        cfg.resolve(None, {"dac_bits": "8.5"})
    assert cfg.resolve(None, {"r_on": "1e4", "r_off": "1e6"})["r_off"] == 1e6
