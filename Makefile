# wfengine: `make` builds ./wfengine; `make test` installs what is missing,
# builds and runs every test through prove; `make demo` runs the clone in the lab.

PKGS      := lua5.4 libuv yaml-0.1 libcurl libpq jansson libh2o openssl
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)

CC       ?= cc
OPT      ?= -O2 -g
CFLAGS   += -std=c11 -D_GNU_SOURCE $(OPT) -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
            -Iengine -Ibindings $(PKG_CFLAGS)
LDLIBS   += $(PKG_LIBS) -lm
BUILD    ?= build
PREFIX   ?= /usr/local

C_SRC    := $(wildcard engine/*.c bindings/*.c)
LUA_SRC  := $(wildcard engine/lua/*.lua bindings/*.lua)
# the console's front end (wfengine serve), embedded as it is: no build step
ASSETS   := $(wildcard engine/console/*.html engine/console/*.css engine/console/*.js)
OBJ      := $(patsubst %.c,$(BUILD)/%.o,$(C_SRC)) $(BUILD)/gen/embedded.o
LIB_OBJ  := $(filter-out $(BUILD)/engine/main.o,$(OBJ))
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
WFENGINE ?= ./wfengine
# Every test file runs under a time limit (tests/lib/timeout-exec).
PROVE    := prove --exec tests/lib/timeout-exec

.PHONY: all deps test test-full asan lint format bench demo lab-up lab-down install clean check-deps

all: wfengine wfengine-tie

wfengine: $(BUILD)/wfengine
	cp $< $@.tmp && mv -f $@.tmp $@

$(BUILD)/wfengine: $(OBJ) $(BUILD)/wfengine-tie
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(OBJ) $(LDLIBS)

# the exec of the engine's children (engine/tie.c), libc only: found beside
# the binary, or in ../libexec/wfengine/ once installed
wfengine-tie: $(BUILD)/wfengine-tie
	cp $< $@.tmp && mv -f $@.tmp $@

$(BUILD)/wfengine-tie: engine/tie.c engine/tie.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DTIE_MAIN $(LDFLAGS) -o $@ engine/tie.c

$(BUILD)/%.o: %.c $(wildcard engine/*.h bindings/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/gen/embedded.c: tools/embed.sh $(LUA_SRC) $(C_SRC) $(ASSETS)
	@mkdir -p $(dir $@)
	sh tools/embed.sh $(LUA_SRC) $(ASSETS) $(wildcard bindings/*.c) > $@.tmp && mv $@.tmp $@

$(BUILD)/gen/embedded.o: $(BUILD)/gen/embedded.c engine/embedded.h
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/tests/%: tests/unit/%.c $(wildcard tests/unit/*.h) $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/unit $(LDFLAGS) -o $@ $< $(LIB_OBJ) $(LDLIBS)

unit: $(UNIT_BIN)

# Installs the Debian packages that are missing (checks first).
deps:
	@sh tools/deps.sh

test: deps
	$(MAKE) all unit
	$(PROVE) $(PROVE_FLAGS) $(UNIT_BIN) -r tests

test-full: deps
	$(MAKE) all unit
	WF_TEST_FULL=1 WF_TEST_TIMEOUT=$${WF_TEST_TIMEOUT:-3600} $(PROVE) $(PROVE_FLAGS) $(UNIT_BIN) -r tests

# AddressSanitizer + UndefinedBehaviorSanitizer over the same tests.
asan: deps
	$(MAKE) BUILD=build/asan OPT="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
	  LDFLAGS="-fsanitize=address,undefined" build/asan/wfengine unit-asan
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  WFENGINE=$(CURDIR)/build/asan/wfengine $(PROVE) $(PROVE_FLAGS) $(patsubst $(BUILD)/%,build/asan/%,$(UNIT_BIN)) -r tests

unit-asan: $(UNIT_BIN)

# Lua: every file of the project (.luacheckrc says which are workflows).
LUA_LINT := engine/lua bindings workflows clone_sandbox.lua tests

lint: deps
	luacheck -q $(LUA_LINT)
	clang-format --dry-run -Werror engine/*.c engine/*.h bindings/*.c $(wildcard bindings/*.h) tests/unit/*.c tests/unit/*.h
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability --std=c11 \
	  --suppress=missingIncludeSystem --inline-suppr -Iengine -Ibindings engine bindings tests/unit

format:
	clang-format -i engine/*.c engine/*.h bindings/*.c $(wildcard bindings/*.h) tests/unit/*.c tests/unit/*.h

bench: deps all $(BUILD)/bench/bench_rewrite
	sh tests/bench/run

# the rewrite's micro-benchmark (tests/bench/bench_rewrite.c), over the engine's objects
$(BUILD)/bench/%: tests/bench/%.c $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB_OBJ) $(LDLIBS)

demo: deps all
	sh tests/lab/demo

lab-up: deps all
	sh tests/lab/up

lab-down:
	sh tests/lab/down

# The binary, the man pages, bash completion and the LuaLS annotations of
# the workflow API (docs/workflow-language.md, "Editor support").
MANDIR   ?= $(PREFIX)/share/man
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 \
	  $(DESTDIR)$(PREFIX)/share/bash-completion/completions \
	  $(DESTDIR)$(PREFIX)/share/wfengine/lua-annotations
	install -m 755 wfengine $(DESTDIR)$(PREFIX)/bin/wfengine
	install -d $(DESTDIR)$(PREFIX)/libexec/wfengine
	install -m 755 wfengine-tie $(DESTDIR)$(PREFIX)/libexec/wfengine/wfengine-tie
	install -m 644 man/wfengine.1 $(DESTDIR)$(MANDIR)/man1/wfengine.1
	install -m 644 man/wfengine-workflow.5 $(DESTDIR)$(MANDIR)/man5/wfengine-workflow.5
	install -m 644 completion/wfengine.bash $(DESTDIR)$(PREFIX)/share/bash-completion/completions/wfengine
	install -m 644 share/lua-annotations/*.lua $(DESTDIR)$(PREFIX)/share/wfengine/lua-annotations/

clean:
	rm -rf build wfengine

# --- fuzzing and valgrind ---------------------------------------------------
# libFuzzer targets (tests/fuzz/fuzz_*.c) built with clang, ASan and UBSan over
# the engine's objects in build/fuzz. `make fuzz` runs each for FUZZ_SECONDS
# and adds what it finds to tests/fuzz/corpus/<target>/ (commit new finds
# that matter); `make fuzz-ci` replays the committed corpus plus a few seconds
# of fuzzing each (tests/fuzz/corpus.t does the same under prove).
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_CI_SECONDS ?= 4
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_SRC     := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN     := $(patsubst tests/fuzz/%.c,build/fuzz/%,$(FUZZ_SRC))
FUZZ_LIB_OBJ := $(patsubst $(BUILD)/%,build/fuzz/%,$(LIB_OBJ))
FUZZ_ENV     := ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

.PHONY: fuzz fuzz-build fuzz-ci valgrind

fuzz-build:
	$(MAKE) BUILD=build/fuzz CC=$(FUZZ_CC) OPT="-O1 -g $(FUZZ_SAN) -fsanitize=fuzzer-no-link" \
	  $(FUZZ_LIB_OBJ)
	$(MAKE) $(FUZZ_BIN)

build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_LIB_OBJ)
	$(FUZZ_CC) -std=c11 -D_GNU_SOURCE -O1 -g $(FUZZ_SAN) -fsanitize=fuzzer -Iengine -Ibindings \
	  $(PKG_CFLAGS) -o $@ $< $(FUZZ_LIB_OBJ) $(LDLIBS)

fuzz: fuzz-build
	@for t in $(FUZZ_BIN); do name=$${t#build/fuzz/}; mkdir -p tests/fuzz/corpus/$$name; \
	  echo "fuzz: $$name for $(FUZZ_SECONDS)s"; \
	  $(FUZZ_ENV) $$t -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -timeout=10 -print_final_stats=1 \
	    -artifact_prefix=build/fuzz/$$name- build/fuzz/corpus-$$name tests/fuzz/corpus/$$name \
	    2>build/fuzz/$$name.log || { tail -40 build/fuzz/$$name.log; exit 1; }; \
	  grep -E 'stat::number_of_executed_units|cov:' build/fuzz/$$name.log | tail -2; done

fuzz-ci: fuzz-build
	FUZZ_SECONDS=$(FUZZ_CI_SECONDS) prove tests/fuzz/corpus.t

# Memcheck over the unit tests and a simulate run (tests/fuzz/valgrind.sh).
valgrind: all unit
	sh tests/fuzz/valgrind.sh $(UNIT_BIN)
