# The README's two commands:
#   make demo   install what is missing, build, run the demo
#   make test   install what is missing, build twice (plain and
#               address+undefined sanitizers), run the whole ctest suite on both
BUILD_DIR ?= build
SANITIZE_DIR ?= build-asan
THREAD_DIR ?= build-tsan
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
CTEST_FLAGS ?= --output-on-failure --timeout 600

.PHONY: all deps configure build demo test test-plain test-sanitize test-thread fuzz fuzz-deps clean

all: build

deps:
	./scripts/install-deps

$(BUILD_DIR)/CMakeCache.txt:
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo

$(SANITIZE_DIR)/CMakeCache.txt:
	cmake -S . -B $(SANITIZE_DIR) -DCMAKE_BUILD_TYPE=Debug -DMPB_SANITIZER=address,undefined

$(THREAD_DIR)/CMakeCache.txt:
	cmake -S . -B $(THREAD_DIR) -DCMAKE_BUILD_TYPE=Debug -DMPB_SANITIZER=thread

configure: deps $(BUILD_DIR)/CMakeCache.txt

build: configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

demo: build
	./$(BUILD_DIR)/bin/mpb-demo

test-plain: build
	cd $(BUILD_DIR) && ctest $(CTEST_FLAGS) -j $(JOBS)

test-sanitize: deps $(SANITIZE_DIR)/CMakeCache.txt
	cmake --build $(SANITIZE_DIR) -j $(JOBS)
	cd $(SANITIZE_DIR) && ctest $(CTEST_FLAGS) -j $(JOBS)

# ThreadSanitizer run of the same suite; not part of `make test` (it adds a
# third build), run it after touching threads or locks.
test-thread: deps $(THREAD_DIR)/CMakeCache.txt
	cmake --build $(THREAD_DIR) -j $(JOBS)
	cd $(THREAD_DIR) && ctest $(CTEST_FLAGS) -j $(JOBS)

test: test-plain test-sanitize

# Fuzzing with libFuzzer (clang): every harness of tests/fuzz/ runs
# FUZZ_SECONDS on its own, starting from its seed corpus; what it finds
# goes to $(FUZZ_DIR)/corpus/<name>/ and crashes to $(FUZZ_DIR)/crash-*.
# `make test` runs each harness over tests/fuzz/corpus/ (no clang needed).
FUZZ_DIR ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_TARGETS = wire client_wire kserve config meta_yaml

$(FUZZ_DIR)/CMakeCache.txt: | fuzz-deps
	cmake -S . -B $(FUZZ_DIR) -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_COMPILER=clang \
		-DMPB_SANITIZER=address,undefined -DMPB_FUZZ=ON -DMPB_WERROR=OFF

fuzz-deps:
	./scripts/install-deps --fuzz

fuzz: fuzz-deps $(FUZZ_DIR)/CMakeCache.txt
	cmake --build $(FUZZ_DIR) -j $(JOBS) --target fuzz_all
	@for t in $(FUZZ_TARGETS); do \
		mkdir -p $(FUZZ_DIR)/corpus/$$t; \
		echo "== fuzz_$$t for $(FUZZ_SECONDS) s"; \
		$(FUZZ_DIR)/bin/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=$(FUZZ_DIR)/ \
			$(FUZZ_DIR)/corpus/$$t tests/fuzz/corpus/$$t || exit 1; \
	done

clean:
	rm -rf $(BUILD_DIR) $(SANITIZE_DIR) $(THREAD_DIR) $(FUZZ_DIR)
