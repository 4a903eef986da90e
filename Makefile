# tunic: the two commands are `make demo` and `make test` (see README.md).
# make            install missing Debian packages, build (build/ or build-san/ with SAN=1)
# make test       build and run every test (CTest); SAN=1 for ASan+UBSan
# make test-long  the longer fault tests: 20 SIGKILLs + --resume per trainer (e2e_kill_resume)
# make demo       the main job on its bundled default
# make demo-agent agentic RL: SFT on tool-use trajectories -> eval with tools -> agentic GRPO -> eval
# make demo-improve  the self-improvement loop on the demo's SFT model (scripts/demo_improve.sh)
# make bench      the benchmarks, side by side with PyTorch
# make fuzz       every libFuzzer harness for FUZZ_SECONDS each (FUZZ=name... for some), clang build in build-fuzz/
# make allocfail  the allocation-failure test over every N (ASan, build-fuzz/); ALLOCFAIL="sft --persist" to narrow
SAN ?= 0
ifeq ($(SAN),1)
BUILD ?= build-san
CMAKE_FLAGS += -DTN_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo
else
BUILD ?= build
endif
JOBS ?= $(shell nproc)

FUZZ_SECONDS ?= 60
.PHONY: all deps build test test-long demo demo-agent demo-improve bench clean fuzz allocfail
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

demo-agent: build
	@scripts/demo_agent.sh $(BUILD)/tunic
demo-improve: build
	@scripts/demo_improve.sh $(BUILD)/tunic

bench: build
	@scripts/bench.sh $(BUILD)

fuzz: deps
	@scripts/fuzz.sh $(FUZZ_SECONDS) $(FUZZ)

allocfail: deps
	@scripts/fuzz.sh 0
	OMP_NUM_THREADS=1 build-fuzz/tests/fuzz/allocfail $(ALLOCFAIL)

clean:
	rm -rf build build-san build-fuzz
