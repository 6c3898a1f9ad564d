#!/bin/sh
# Engine benchmark (make bench): time to check, plan and --simulate a
# 31-step and a 1,000-step no-op workflow, the per-step overhead with the
# fsync'd journal, next to ansible-playbook running 31 no-op tasks on
# localhost. Median of ROUNDS runs, interleaved; prints min and max too.
set -eu
cd "$(dirname "$0")/../.."
WFENGINE=${WFENGINE:-./wfengine}
ROUNDS=${ROUNDS:-5}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

gen() { # gen N FILE: a workflow of N no-op steps
  {
    echo 'local steps = {}'
    echo "for i = 1, $1 do steps[#steps + 1] = step(string.format(\"s%04d\", i)) { run = function(ctx) return i end } end"
    echo 'return workflow { name = "noop", steps = steps }'
  } > "$2"
}
gen 31 "$tmp/w31.lua"
gen 1000 "$tmp/w1000.lua"

cat > "$tmp/play.yml" <<'YML'
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
YML
i=1
while [ $i -le 31 ]; do
  printf '    - name: step %d\n      command: /bin/true\n' $i >> "$tmp/play.yml"
  i=$((i + 1))
done

# seconds COMMAND...: wall time of one run, in seconds (python3 for a clock).
seconds() {
  python3 - "$@" <<'PY'
import subprocess, sys, time
t = time.perf_counter()
subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
print("%.6f" % (time.perf_counter() - t))
PY
}

stats() { # stats FILE -> "median min max"
  sort -n "$1" | awk '{ v[NR] = $1 } END { printf "%.6f %.6f %.6f\n", v[int((NR + 1) / 2)], v[1], v[NR] }'
}

have_ansible=1
command -v ansible-playbook >/dev/null 2>&1 || have_ansible=0
r=1
while [ $r -le "$ROUNDS" ]; do
  seconds "$WFENGINE" check "$tmp/w31.lua" >> "$tmp/check31"
  seconds "$WFENGINE" plan "$tmp/w31.lua" >> "$tmp/plan31"
  seconds "$WFENGINE" run "$tmp/w31.lua" --simulate -q --state "$tmp/state" >> "$tmp/sim31"
  seconds "$WFENGINE" run "$tmp/w1000.lua" --simulate -q --state "$tmp/state" >> "$tmp/sim1000"
  seconds "$WFENGINE" run "$tmp/w31.lua" -q --state "$tmp/state" >> "$tmp/run31"
  seconds "$WFENGINE" run "$tmp/w1000.lua" -q --state "$tmp/state" >> "$tmp/run1000"
  if [ $have_ansible = 1 ] && [ $r -le 3 ]; then
    ANSIBLE_LOCALHOST_WARNING=false ANSIBLE_INVENTORY_UNPARSED_WARNING=false \
      seconds ansible-playbook -i localhost, "$tmp/play.yml" >> "$tmp/ansible31"
  fi
  r=$((r + 1))
done

echo "engine benchmark: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), median of $ROUNDS (min-max)"
for name in check31 plan31 sim31 run31 sim1000 run1000; do
  set -- $(stats "$tmp/$name")
  printf '  %-28s %8.1f ms  (%.1f-%.1f)\n' "$name" "$(echo "$1 * 1000" | bc -l)" \
    "$(echo "$2 * 1000" | bc -l)" "$(echo "$3 * 1000" | bc -l)"
done
set -- $(stats "$tmp/run31"); run31=$1
set -- $(stats "$tmp/run1000"); run1000=$1
set -- $(stats "$tmp/sim31"); sim31=$1
per_step=$(echo "($run1000 - $run31) / 969" | bc -l)
printf '  per-step overhead (journaled, fsync): %.0f us\n' "$(echo "$per_step * 1000000" | bc -l)"
printf '  31-step simulate: %.1f ms (goal < 50 ms)\n' "$(echo "$sim31 * 1000" | bc -l)"
if [ $have_ansible = 1 ]; then
  set -- $(stats "$tmp/ansible31")
  ansible_per_task=$(echo "$1 / 31" | bc -l)
  printf '  ansible-playbook 31 x command:/bin/true: %.0f ms (%.0f-%.0f), %.1f ms per task\n' \
    "$(echo "$1 * 1000" | bc -l)" "$(echo "$2 * 1000" | bc -l)" "$(echo "$3 * 1000" | bc -l)" \
    "$(echo "$ansible_per_task * 1000" | bc -l)"
  printf '  ratio per step, ansible / wfengine: %.0fx (goal >= 100x)\n' \
    "$(echo "$ansible_per_task / $per_step" | bc -l)"
else
  echo "  ansible-playbook not installed: no comparison (make bench installs ansible-core)"
fi
