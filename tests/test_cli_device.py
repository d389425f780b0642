"""`memcc device list | show | iv`."""

from __future__ import annotations

from test_cli import assert_user_error, memcc_cli

MODELS = ("data_driven", "ideal", "linear_ion_drift", "stanford_pku", "vteam")


def test_list_names_every_model():
    proc = memcc_cli("device", "list")
    assert proc.returncode == 0, proc.stderr
    names = [line.split()[0] for line in proc.stdout.splitlines() if line.strip()]
    assert names == sorted(MODELS)


def test_show_prints_parameters_with_overrides():
    proc = memcc_cli("device", "show", "vteam", "--device-param", "r_on=50:std=10:min=1")
    assert proc.returncode == 0, proc.stderr
    rows = {line.split()[0]: line for line in proc.stdout.splitlines()[1:]}
    assert "50:std=10:min=1" in rows["r_on"]
    assert "1000" in rows["r_off"] and "ohm" in rows["r_off"]
    assert "-0.2" in rows["v_on"]


def test_show_rejects_unknown_device_and_parameter():
    assert_user_error(memcc_cli("device", "show", "nope"), "unknown device")
    assert_user_error(memcc_cli("device", "show", "vteam", "--device-param", "r_onn=5"), "r_onn")
    assert_user_error(memcc_cli("device", "show", "vteam", "--device-param", "r_on=abc"), "r_on")


def test_iv_writes_png(tmp_path):
    out = tmp_path / "iv.png"
    proc = memcc_cli("device", "iv", "vteam", "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["iv.png"]  # no temporary file left


def test_iv_refuses_non_png_and_leaves_nothing(tmp_path):
    out = tmp_path / "iv.txt"
    assert_user_error(memcc_cli("device", "iv", "vteam", "-o", out), "PNG")
    assert list(tmp_path.iterdir()) == []


def test_compile_vteam_report_and_seeds(tmp_path):
    import json

    from test_cli import mlp_model
    import onnx

    src = tmp_path / "mlp.onnx"
    onnx.save(mlp_model(), str(src))
    report = tmp_path / "report.json"
    a, b, c = tmp_path / "a.onnx", tmp_path / "b.onnx", tmp_path / "c.onnx"
    proc = memcc_cli("compile", src, "--device", "vteam", "--device-param", "r_on=50:std=5:min=1",
                     "--tolerance", "0.02", "--max-pulses", "300", "-o", a, "--report", report, "--seed", "3")
    assert proc.returncode == 0, proc.stderr
    assert "programmed" in proc.stdout and "within tolerance" in proc.stdout
    data = json.loads(report.read_text())
    total = data["programming"]["total"]
    assert data["programming"]["device"] == "vteam" and data["settings"]["seed"] == 3
    assert data["programming"]["settings"]["tolerance"] == 0.02
    assert total["n_programmed"] == total["n_converged"] + total["n_missed"] > 0
    assert (tmp_path / "report.png").read_bytes()[:4] == b"\x89PNG"
    assert memcc_cli("compile", src, "--device", "vteam", "--device-param", "r_on=50:std=5:min=1",
                     "--tolerance", "0.02", "--max-pulses", "300", "-o", b, "--seed", "3", "-q").returncode == 0
    assert memcc_cli("compile", src, "--device", "vteam", "-o", c, "--seed", "4", "-q").returncode == 0
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


def test_compile_rejects_bad_device_flags(tmp_path):
    from test_cli import mlp_model
    import onnx

    src = tmp_path / "mlp.onnx"
    onnx.save(mlp_model(), str(src))
    out = tmp_path / "out.onnx"
    for flags, fragment in [
        (["--device", "vteam", "--device-param", "r_onn=5"], "r_onn"),
        (["--device", "vteam", "--tolerance", "abc"], "--tolerance"),
        (["--device", "ideal", "--programming", "naive"], "naive"),
        (["--device", "vteam", "--d2d-std", "-1"], "d2d_std"),
    ]:
        assert_user_error(memcc_cli("compile", src, "-o", out, *flags), fragment)
        assert not out.exists()


def test_iv_refuses_bad_sweep_options(tmp_path):
    out = tmp_path / "iv.png"
    for flags, fragment in [
        (["--frequency", "0"], "--frequency 0: must be > 0"),
        (["--duration", "-1"], "--duration"),
        (["--amplitude", "nan"], "--amplitude nan: must be a finite number"),
        (["--amplitude", "-1"], "--amplitude -1: must be > 0"),
        (["--frequency", "inf"], "--frequency"),
        # 1 s of the default 50 MHz sine in at most 20000 steps: far under one sample per period
        (["--duration", "1"], "--duration"),
    ]:
        proc = memcc_cli("device", "iv", "vteam", "-o", out, *flags)
        assert_user_error(proc, fragment)
        assert "iv_loop" not in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_iv_writes_into_new_folder(tmp_path):
    out = tmp_path / "plots" / "iv.png"
    proc = memcc_cli("device", "iv", "vteam", "-o", out, "--duration", "1e-7")
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes()[:4] == b"\x89PNG"
