# ngx_linguamate: build, run and test the nginx module on Debian 12.
#
#   make run      install what is missing, build, serve conf/ in the foreground
#   make test     install what is missing, build, run the whole suite
#   make start | stop | reload | status
#   make upgrade  build and load the new module with no request lost
#                 (binary upgrade, health gate, rollback if it fails)
#   make rollback load the previous module the same way
#   make deb      Debian packages into build/deb/ (docs/deployment.md)
#   make image    the container image, with buildah (docs/deployment.md)
#   make lifecycle  the package, unit, image and upgrade checks of .ci/run
#   make bench    wrk: the module's locations against a bare "return 200"
#   make fuzz     libFuzzer over every parser, FUZZ_SECONDS=60 per harness
#   make fuzz-regress   replay fuzz/regressions/ only
#   make lint     static checks: gcc and clang -Werror builds, cppcheck,
#                 clang-tidy (.clang-tidy), 80 columns, the layers
#                 (scripts/check-includes) (scripts/lint.sh)
#   make faults   faults under load: reloads, kill -9, STATE_DIR full,
#                 a flapping toolkit, tiny zones (FAULTS_SECONDS=30)
#   make soak     wrk at high load, RSS and zones sampled (SOAK_SECONDS=600)
#
# SANITIZE=1 builds with AddressSanitizer + UBSan (make test SANITIZE=1).
# VALGRIND=1 runs the suite under valgrind memcheck (make test VALGRIND=1).

SHELL := /bin/bash
SANITIZE ?= 0
VALGRIND ?= 0
PROVE_JOBS ?= 2
TESTS ?= t/

export SANITIZE

.PHONY: all deps test-deps build run start stop reload status test bench \
        fuzz fuzz-regress lint faults soak clean upgrade rollback deb image \
        lifecycle

all: build

deps:
	@scripts/install-deps.sh

test-deps:
	@scripts/install-deps.sh test

build: deps
	@scripts/build.sh >/dev/null

run: build
	@scripts/linguamate run

start: build
	@scripts/linguamate start

stop:
	@scripts/linguamate stop

reload:
	@scripts/linguamate reload

status:
	@scripts/linguamate status

upgrade: build
	@scripts/upgrade.sh upgrade

rollback:
	@scripts/upgrade.sh rollback

deb:
	@scripts/deb.sh

image:
	@scripts/image.sh

lifecycle: test-deps
	@scripts/lifecycle.sh

test: test-deps
	@scripts/test.sh $(TESTS)

bench: test-deps
	@scripts/bench.sh

fuzz: test-deps
	@scripts/fuzz.sh

lint: test-deps
	@scripts/lint.sh
# not part of "make test": minutes of load (docs/reliability.md)
faults: test-deps
	@scripts/faults.sh

soak: test-deps
	@scripts/soak.sh
fuzz-regress: test-deps
	@FUZZ_SECONDS=0 scripts/fuzz.sh

clean:
	rm -rf build t/servroot*
