#!/bin/sh
# The GPU checks of the CUDA kernels in one command, on a machine with an NVIDIA GPU and no
# internet (the device tool's machines): build libmemcc_ops with CUDA, run tests/test_cuda.py
# with MEMCC_REQUIRE_CUDA=1 (so nothing passes by skipping), then benchmarks/bench_gpu.py.
#
#   tests/gpu/run_on_device.sh --stage   # copy .whl/* into the stage dir (one call per piece)
#   tests/gpu/run_on_device.sh           # assemble, install, build, test, benchmark
#
# What it needs, prepared on a machine with internet and carried in ignored folders:
#   .ortinc/  onnxruntime's C API headers (>= 1.17), e.g. the fetched Debian headers:
#             cp -r build/cpp-tests/_deps/onnxruntime-headers/x/usr/include/onnxruntime .ortinc
#   .whl/     scipy_openblas32-*.whl and onnxruntime_gpu-*.whl for the machine's Python. A wheel
#             larger than one call can carry is split (split -b 60M W W.part) and sent piece by
#             piece with --stage; the pieces are joined back here.
# For the device tool's machines (Python 3.12, onnxruntime-gpu built for CUDA 13), on this side:
#   echo /.whl/ >> .git/info/exclude   (already in .gitignore here, as are .ortinc/ and gpu-results/)
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#     -d /tmp/wheels onnxruntime-gpu==1.31.1 scipy-openblas32
#   split -b 60M /tmp/wheels/onnxruntime_gpu-*.whl /tmp/wheels/<same name>.whl.part
# then one `run` per piece (carry .whl holding that piece, command `tests/gpu/run_on_device.sh
# --stage`) while the machine stays warm, and a last run of this script with .ortinc carried.
# Results go to $OUT (the device tool's output folder) when it is set, else to ./gpu-results.
set -eu

STAGE=${MEMCC_GPU_STAGE:-/tmp/memcc-gpu}
RESULTS=${OUT:-$PWD/gpu-results}
PY=${PYTHON:-python3}
mkdir -p "$STAGE" "$RESULTS"

if [ "${1:-}" = "--stage" ]; then
  cp .whl/* "$STAGE"/
  ls -l "$STAGE"
  exit 0
fi
[ -d .whl ] && cp .whl/* "$STAGE"/ 2>/dev/null || true

# Join split wheels: NAME.whl.partaa, NAME.whl.partab, ... -> NAME.whl
for first in "$STAGE"/*.whl.partaa; do
  [ -e "$first" ] || continue
  whole=${first%.partaa}
  cat "$whole".part* > "$whole"
  rm -f "$whole".part*
done
SITE=/tmp/memcc-site
rm -rf "$SITE"
"$PY" -m pip install -q --no-index --no-deps --no-compile --target "$SITE" "$STAGE"/*.whl
export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
"$PY" -c "import onnxruntime as o; print('onnxruntime', o.__version__, o.get_available_providers())"

BUILD=/tmp/memcc-gpu-build
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DMEMCC_BUILD_TESTS=ON -DPython_EXECUTABLE="$(command -v "$PY")" \
  -DONNXRUNTIME_INCLUDE_DIR="$PWD/.ortinc" -DCMAKE_CUDA_ARCHITECTURES=90 > "$RESULTS/build.log" 2>&1 \
  && cmake --build "$BUILD" -j"$(nproc)" >> "$RESULTS/build.log" 2>&1 \
  || { tail -40 "$RESULTS/build.log"; exit 1; }
grep -q "CUDA kernels 1" "$RESULTS/build.log" || { echo "the build found no CUDA compiler"; exit 1; }
LIB="$BUILD/ops/libmemcc_ops.so"

# memcc from this checkout without installing it: memcc/ with passes/ as memcc.passes.
OVERLAY=/tmp/memcc-overlay
rm -rf "$OVERLAY" && mkdir -p "$OVERLAY/memcc"
for f in "$PWD"/memcc/*; do ln -s "$f" "$OVERLAY/memcc/"; done
ln -s "$PWD/passes" "$OVERLAY/memcc/passes"
export PYTHONPATH="$OVERLAY:$PYTHONPATH" MEMCC_OPS_LIBRARY="$LIB"

status=0
ctest --test-dir "$BUILD" --output-on-failure > "$RESULTS/ctest.log" 2>&1 || status=1
tail -5 "$RESULTS/ctest.log"
(cd tests && MEMCC_REQUIRE_LIBRARY=1 MEMCC_REQUIRE_CUDA=1 "$PY" -m pytest -q test_cuda.py) \
  > "$RESULTS/test_cuda.log" 2>&1 || status=1
tail -15 "$RESULTS/test_cuda.log"
PYTHONUNBUFFERED=1 "$PY" benchmarks/bench_gpu.py --json "$RESULTS/bench_gpu.json" > "$RESULTS/bench_gpu.txt" 2>&1 \
  || status=1
cat "$RESULTS/bench_gpu.txt"
exit $status
