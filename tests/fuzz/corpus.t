#!/bin/sh
# Runs each libFuzzer target (tests/fuzz/fuzz_*.c, built by `make fuzz-build`)
# over its committed corpus (tests/fuzz/corpus/<target>/) and then fuzzes it
# for FUZZ_SECONDS (default 3) more: the "CI runs each briefly" of issue [6].
# Skips when clang's libFuzzer runtime is missing. Findings land in
# build/fuzz/<target>-crash-*; the log tail is printed.
cd "$(dirname "$0")/../.." || exit 1
seconds=${FUZZ_SECONDS:-3}
probe=$(mktemp -d)
printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n){(void)d;(void)n;return 0;}\n' >"$probe/p.c"
if ! ${FUZZ_CC:-clang} -fsanitize=fuzzer,address,undefined -o "$probe/p" "$probe/p.c" 2>/dev/null; then
  rm -rf "$probe"
  echo "1..0 # SKIP clang with libFuzzer (libclang-rt-14-dev) not available"
  exit 0
fi
rm -rf "$probe"
if ! make -s -j2 fuzz-build >build/fuzz-build.log 2>&1; then
  echo "1..1"
  echo "not ok 1 - make fuzz-build"
  sed 's/^/#   /' build/fuzz-build.log | tail -30
  exit 0
fi
targets=$(cd tests/fuzz && ls fuzz_*.c | sed 's/\.c$//')
echo "1..$(echo "$targets" | wc -w)"
n=0
for t in $targets; do
  n=$((n + 1))
  corpus=tests/fuzz/corpus/$t
  count=$(ls "$corpus" 2>/dev/null | wc -l)
  work=$(mktemp -d)
  # The committed corpus is read-only here: new units go to a scratch dir.
  if ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "build/fuzz/$t" -max_total_time="$seconds" -max_len=65536 -timeout=10 -print_final_stats=1 \
    -artifact_prefix="build/fuzz/$t-" "$work" "$corpus" >"build/fuzz/$t.log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "build/fuzz/$t.log")
    echo "ok $n - $t: $count corpus files replayed, $runs executions"
  else
    echo "not ok $n - $t: a finding (see build/fuzz/$t-*)"
    grep -v '^#[0-9]' "build/fuzz/$t.log" | tail -40 | sed 's/^/#   /'
  fi
  rm -rf "$work"
done
