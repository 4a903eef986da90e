# tunic: the two commands are `make demo` and `make test` (see README.md).
# make            install missing Debian packages, build (build/ or build-san/ with SAN=1)
# make test       build and run every test (CTest); SAN=1 for ASan+UBSan
# make test-long  the longer fault tests: 20 SIGKILLs + --resume per trainer (e2e_kill_resume)
# make demo       the main job on its bundled default
# make bench      the benchmarks, side by side with PyTorch
SAN ?= 0
ifeq ($(SAN),1)
BUILD ?= build-san
CMAKE_FLAGS += -DTN_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo
else
BUILD ?= build
endif
JOBS ?= $(shell nproc)

.PHONY: all deps build test test-long demo bench clean
all: build

deps:
	@scripts/deps.sh

build: deps
	@cmake -S . -B $(BUILD) $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

test: build
	@scripts/test-setup.sh
	cd $(BUILD) && ctest --output-on-failure -j 2 $(if $(TESTS),-R '$(TESTS)',)
	@echo "== the whole suite again with the portable kernels (TN_ISA=portable)"
	cd $(BUILD) && TN_ISA=portable ctest --output-on-failure -j 2 -LE isa $(if $(TESTS),-R '$(TESTS)',)

test-long: build
	@scripts/test-setup.sh
	cd $(BUILD) && TN_KILLS=20 ctest --output-on-failure -R 'e2e_kill_resume'

demo: build
	@scripts/demo.sh $(BUILD)/tunic

bench: build
	@scripts/bench.sh $(BUILD)

clean:
	rm -rf build build-san
