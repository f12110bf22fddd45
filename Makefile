# The README's two commands:
#   make demo   install what is missing, build, run the demo
#   make test   install what is missing, build twice (plain and
#               address+undefined sanitizers), run the whole ctest suite on both
BUILD_DIR ?= build
SANITIZE_DIR ?= build-asan
THREAD_DIR ?= build-tsan
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
CTEST_FLAGS ?= --output-on-failure --timeout 600

.PHONY: all deps configure build demo test test-plain test-sanitize test-thread clean

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

clean:
	rm -rf $(BUILD_DIR) $(SANITIZE_DIR) $(THREAD_DIR)
