# moe: the usual steps. `make demo` runs the main job, `make test` runs the tests; both install
# what is missing (Debian packages), configure, build and run.
#
#   make build       release build in build/release
#   make build-cli   only the moe command (and the library) in build/release: what the demo and
#                    the docs' commands need
#   make test        unit, gradcheck, golden, browser and mpi tests, the README's and docs' commands
#                    (make test-docs), the unit tests under ASan + UBSan, then the fuzzers
#                    (make test-fuzz)
#   make test-interop  checkpoints rebuilt in PyTorch (installs python3-torch)
#   make test-mpi    the mpi label: collectives and training under mpirun at 2 and 3 ranks
#   make test-slow   the slow label
#   make test-fuzz   the libFuzzer targets (clang, build/fuzz): corpus replay + 20 s per target
#   make test-fuzz-long  each fuzzer for 10 million executions (hours)
#   make test-fresh  both README commands on a fresh Debian 12 root (scripts/test_fresh.sh;
#                    root, debootstrap): what CI runs after make test
#   make demo        an MoE language model on Jane Austen beside its dense twin, the same time
#                    (scripts/demo.sh)
#   make demo-sentiment  review sentiment, MoE vs dense of equal active size
#                    (scripts/demo_sentiment.sh)
#   make format      clang-format every source file
#   make tidy        clang-tidy over src/
#   make tidy-changed  clang-tidy over the src/ and tools/ sources changed since TIDY_BASE
#                    (HEAD~5), failing on any warning: what CI runs

JOBS ?= $(shell nproc)
RELEASE := build/release
ASAN := build/asan
FUZZ := build/fuzz
TIDY := build/tidy
CMAKE_FLAGS ?=

.PHONY: deps build build-cli build-asan build-fuzz deps-fuzz test test-fast test-asan test-slow test-fuzz \
	test-fresh test-docs test-mpi test-interop deps-interop deps-test test-fuzz-long demo demo-sentiment bench \
	format format-check tidy tidy-changed clean

deps:
	@scripts/install_deps.sh

$(RELEASE)/CMakeCache.txt:
	cmake -S . -B $(RELEASE) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)

build: deps $(RELEASE)/CMakeCache.txt
	cmake --build $(RELEASE) -j $(JOBS)

build-cli: deps $(RELEASE)/CMakeCache.txt
	cmake --build $(RELEASE) -j $(JOBS) --target moe_cli

$(ASAN)/CMakeCache.txt:
	cmake -S . -B $(ASAN) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMOE_SANITIZE=ON \
	  -DMOE_BUILD_BENCH=OFF $(CMAKE_FLAGS)

build-asan: deps $(ASAN)/CMakeCache.txt
	cmake --build $(ASAN) -j $(JOBS)

# What only the tests need: Chromium for the report's browser test.
deps-test: deps
	@scripts/install_deps.sh chromium

test-fast: deps-test build
	cd $(RELEASE) && ctest -L 'unit|gradcheck|golden|browser|mpi' --output-on-failure -j $(JOBS)

test-mpi: build
	cd $(RELEASE) && ctest -L mpi --output-on-failure

test-docs: build-cli
	cd $(RELEASE) && ctest -L docs --output-on-failure

deps-interop: deps
	@scripts/install_deps.sh python3-torch python3-numpy python3-sentencepiece

test-interop: deps-interop build
	cd $(RELEASE) && ctest -L interop --output-on-failure

test-asan: build-asan
	cd $(ASAN) && ASAN_OPTIONS=detect_leaks=1 ctest -L unit --output-on-failure -j $(JOBS)

test: test-fast test-docs test-asan test-fuzz

# clang with libFuzzer's runtime and its OpenMP runtime, for the fuzz build only.
deps-fuzz: deps
	@scripts/install_deps.sh clang libclang-rt-dev libomp-dev

$(FUZZ)/CMakeCache.txt: | deps-fuzz
	cmake -S . -B $(FUZZ) -DMOE_FUZZ=ON -DCMAKE_CXX_COMPILER=clang++ \
	  -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS)

build-fuzz: deps-fuzz $(FUZZ)/CMakeCache.txt
	cmake --build $(FUZZ) -j $(JOBS)

test-fuzz: build-fuzz
	cd $(FUZZ) && ctest -L fuzz --output-on-failure -j $(JOBS)

# Each fuzzer for 10 million executions (MOE_FUZZ_LONG_RUNS), corpus replay first: hours.
test-fuzz-long: build-fuzz
	cd $(FUZZ) && ctest -L slow --output-on-failure

test-slow: build
	cd $(RELEASE) && ctest -L slow --output-on-failure

test-fresh:
	scripts/test_fresh.sh

demo: build-cli
	scripts/demo.sh $(RELEASE)

demo-sentiment: build-cli
	scripts/demo_sentiment.sh $(RELEASE)

bench: build
	$(RELEASE)/bench/bench_moe

format:
	clang-format -i $$(git ls-files '*.h' '*.cpp')

# Fails when a source file differs from what `make format` would write (CI runs it).
format-check:
	@scripts/install_deps.sh --only clang-format
	clang-format --dry-run -Werror $$(git ls-files '*.h' '*.cpp')

# clang-tidy reads a configuration of its own: the build compiles the library in batches of
# sources (MOE_UNITY), and clang-tidy needs each source's own command. Configured, never built.
$(TIDY)/CMakeCache.txt:
	cmake -S . -B $(TIDY) -DCMAKE_BUILD_TYPE=Release -DMOE_UNITY=OFF $(CMAKE_FLAGS) >/dev/null

tidy: $(TIDY)/CMakeCache.txt
	clang-tidy -p $(TIDY) $$(git ls-files 'src/*.cpp')

# The .cpp files under src/ and tools/ that differ from TIDY_BASE (committed or not), through
# clang-tidy with every warning an error, a file per core at a time; all of them when TIDY_BASE does not exist (a shallow
# clone). The whole of src/ takes too long for every CI run on a small machine; the files a
# change touches are the ones it can have broken.
TIDY_BASE ?= HEAD~5
tidy-changed: deps $(TIDY)/CMakeCache.txt
	@scripts/install_deps.sh --only clang-tidy
	@if git rev-parse -q --verify '$(TIDY_BASE)^{commit}' >/dev/null; then \
	  files=$$(git diff --name-only --diff-filter=AMR '$(TIDY_BASE)' -- 'src/*.cpp' 'tools/*.cpp'); \
	else \
	  files=$$(git ls-files 'src/*.cpp' 'tools/*.cpp'); \
	fi; \
	if [ -z "$$files" ]; then echo "tidy-changed: no source differs from $(TIDY_BASE)"; exit 0; fi; \
	echo "tidy-changed: $$(echo $$files | wc -w) files differ from $(TIDY_BASE)"; \
	printf '%s\n' $$files | xargs -P $(JOBS) -n 1 clang-tidy -p $(TIDY) --quiet --warnings-as-errors='*'

clean:
	rm -rf build
