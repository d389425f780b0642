"""The names the README uses after a bare `import memcc`, checked in a fresh interpreter (inside
pytest the submodules are already imported, which would hide a missing lazy import)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import memcc

PKG_PARENT = str(Path(os.path.abspath(memcc.__file__)).parent.parent)

SNIPPET = """
import memcc
assert callable(memcc.runtime.session)
assert callable(memcc.sweep.run_sweep)
assert callable(memcc.datasets.load_dataset)
for name in ("DeviceFaults", "FiniteStates", "Endurance", "ReadNoise", "NonlinearIV", "Drift"):
    assert isinstance(getattr(memcc.passes, name), type), name
try:
    memcc.no_such_thing
except AttributeError as e:
    assert "no_such_thing" in str(e)
else:
    raise SystemExit("an unknown attribute did not raise")
print("ok")
"""


# The package the tests import (installed, or a development overlay), and the source checkout
# itself, where the passes are the top-level passes/ folder rather than memcc/passes.
SOURCE_TREE = str(Path(__file__).resolve().parent.parent)


@pytest.mark.parametrize("root", [PKG_PARENT, SOURCE_TREE], ids=["package", "source-tree"])
def test_bare_import_reaches_the_public_submodules(root):
    env = dict(os.environ)
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-c", SNIPPET], capture_output=True, text=True, cwd=root,
                          env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_runtime_nonidealities_are_in_memcc_passes():
    import memcc.passes as passes
    from memcc.passes.nonidealities import Drift, NonlinearIV, ReadNoise

    assert (passes.ReadNoise, passes.NonlinearIV, passes.Drift) == (ReadNoise, NonlinearIV, Drift)
    assert {"ReadNoise", "NonlinearIV", "Drift"} <= set(passes.__all__)
