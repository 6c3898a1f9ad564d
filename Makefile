# wfengine: `make` builds ./wfengine; `make test` installs what is missing,
# builds and runs every test through prove; `make demo` runs the clone in the lab.

PKGS      := lua5.4 libuv yaml-0.1 libcurl libpq jansson
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
OBJ      := $(patsubst %.c,$(BUILD)/%.o,$(C_SRC)) $(BUILD)/gen/embedded.o
LIB_OBJ  := $(filter-out $(BUILD)/engine/main.o,$(OBJ))
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
WFENGINE ?= ./wfengine

.PHONY: all deps test test-full asan lint format bench demo lab-up lab-down install clean check-deps

all: wfengine

wfengine: $(BUILD)/wfengine
	cp $< $@.tmp && mv -f $@.tmp $@

$(BUILD)/wfengine: $(OBJ)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/%.o: %.c $(wildcard engine/*.h bindings/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/gen/embedded.c: tools/embed.sh $(LUA_SRC) $(C_SRC)
	@mkdir -p $(dir $@)
	sh tools/embed.sh $(LUA_SRC) $(wildcard bindings/*.c) > $@.tmp && mv $@.tmp $@

$(BUILD)/gen/embedded.o: $(BUILD)/gen/embedded.c engine/embedded.h
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/tests/%: tests/unit/%.c tests/unit/tap.h $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/unit $(LDFLAGS) -o $@ $< $(LIB_OBJ) $(LDLIBS)

unit: $(UNIT_BIN)

# Installs the Debian packages that are missing (checks first).
deps:
	@sh tools/deps.sh

test: deps
	$(MAKE) all unit
	prove $(PROVE_FLAGS) $(UNIT_BIN) -r tests

test-full: deps
	$(MAKE) all unit
	WF_TEST_FULL=1 prove $(PROVE_FLAGS) $(UNIT_BIN) -r tests

# AddressSanitizer + UndefinedBehaviorSanitizer over the same tests.
asan: deps
	$(MAKE) BUILD=build/asan OPT="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
	  LDFLAGS="-fsanitize=address,undefined" build/asan/wfengine unit-asan
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  WFENGINE=$(CURDIR)/build/asan/wfengine prove $(PROVE_FLAGS) $(patsubst $(BUILD)/%,build/asan/%,$(UNIT_BIN)) -r tests

unit-asan: $(UNIT_BIN)

lint:
	clang-format --dry-run -Werror engine/*.c engine/*.h bindings/*.c $(wildcard bindings/*.h) tests/unit/*.c tests/unit/*.h
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability --std=c11 \
	  --suppress=missingIncludeSystem --inline-suppr -Iengine -Ibindings engine bindings tests/unit

format:
	clang-format -i engine/*.c engine/*.h bindings/*.c $(wildcard bindings/*.h) tests/unit/*.c tests/unit/*.h

bench: deps all
	sh tests/bench/run

demo: deps all
	sh tests/lab/demo

lab-up: deps all
	sh tests/lab/up

lab-down:
	sh tests/lab/down

install: all
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 755 wfengine $(DESTDIR)$(PREFIX)/bin/wfengine

clean:
	rm -rf build wfengine
