# The two set-up commands of the README: `make demo` and `make test`. Each creates its own
# virtual environment and installs everything it needs from PyPI (and, for the onnxruntime
# headers, Debian's archive) so that a fresh clone needs nothing installed by hand.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(abspath $(VENV))/bin
# PyTorch exports the test models. The CPU build is pinned because an unpinned `torch` may pull a
# multi-gigabyte CUDA build; the version matches the wheel cached on the project's machines.
TORCH  ?= torch==2.13.0
JOBS   ?= 2

.PHONY: demo test install install-test cpp-test sanitize bench study clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

install: $(BIN)/python
	$(BIN)/python -m pip install -q .

install-test: $(BIN)/python
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q ".[test]"

demo: install
	@mkdir -p out
	$(BIN)/memcc compile examples/digits_cnn.onnx --device ideal -o out/digits_ideal.onnx
	$(BIN)/memcc compile examples/digits_cnn.onnx --device ideal --tile 128x128 --dac-bits 8 --adc-bits 8 -o out/digits_ideal_tiled.onnx
	$(BIN)/memcc compile examples/digits_cnn.onnx --device vteam -o out/digits_vteam.onnx --report out/digits_vteam_report.json
	$(BIN)/memcc compile examples/digits_cnn.onnx --device vteam --tile 128x128 --dac-bits 8 --adc-bits 8 -o out/digits_vteam_tiled.onnx
	$(BIN)/memcc info out/digits_vteam_tiled.onnx
	$(BIN)/python examples/evaluate.py examples/digits_cnn.onnx \
		"memcc ideal=out/digits_ideal.onnx" \
		"memcc ideal, 128x128 tiles, 8-bit DAC/ADC=out/digits_ideal_tiled.onnx" \
		"memcc vteam (10% d2d, programmed)=out/digits_vteam.onnx" \
		"memcc vteam, 128x128 tiles, 8-bit DAC/ADC=out/digits_vteam_tiled.onnx"

# C++ unit tests of the op library, built outside the wheel (they are not shipped).
cpp-test: $(BIN)/python
	$(BIN)/python -m pip install -q scipy-openblas32
	cmake -S . -B build/cpp-tests -DMEMCC_BUILD_TESTS=ON -DCMAKE_BUILD_TYPE=Release -DPython_EXECUTABLE=$(BIN)/python
	cmake --build build/cpp-tests -j$(JOBS)
	ctest --test-dir build/cpp-tests --output-on-failure

# The same C++ tests under AddressSanitizer and UndefinedBehaviorSanitizer (run once per change to ops/).
sanitize: $(BIN)/python
	$(BIN)/python -m pip install -q scipy-openblas32
	cmake -S . -B build/cpp-asan -DMEMCC_BUILD_TESTS=ON -DMEMCC_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug -DPython_EXECUTABLE=$(BIN)/python
	cmake --build build/cpp-asan -j$(JOBS)
	ctest --test-dir build/cpp-asan --output-on-failure

# MEMCC_REQUIRE_LIBRARY turns "library not built" skips into failures: here it must be built.
test: install-test cpp-test
	cd tests && MEMCC_REQUIRE_LIBRARY=1 $(BIN)/python -m pytest -q

bench: install-test
	$(BIN)/python benchmarks/bench_cpu.py
	$(BIN)/python benchmarks/bench_nonidealities.py
	$(BIN)/python benchmarks/bench_programming.py

# The MemTorch Fig. 7 studies (docs/memtorch-fig7.md); needs Debian's dataset-fashion-mnist.
study: install-test
	$(BIN)/python examples/reproduce_memtorch_fig7.py --jobs $(JOBS)

clean:
	rm -rf build out $(VENV)
