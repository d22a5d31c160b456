#!/usr/bin/env bash
# Instructions per task (or call) of each shape of the `work_per_task`
# examples, counted by callgrind: the run with 30 batches of 1,000 minus the
# run with 10, divided by 20,000. Unlike wall-clock figures these repeat to
# within about 1.5% on a shared machine. Needs valgrind. The plain shape
# (a trivial CPU task, run on the runtime's workers) has no baseline here:
# its overhead is what `benches/cpu_map.rs` sets against rayon; nor has the
# pair shape (an async task of two ready refs, as in a tree reduce), which is
# there to show what a task's second argument costs.
#
#   benches/work_per_task.sh            # glibc malloc and mimalloc
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --example work_per_task --example work_per_task_mimalloc
count() {
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
for example in work_per_task work_per_task_mimalloc; do
  declare -A per=()
  for shape in async pair plain tokio actor mpsc; do
    low=$(count "target/release/examples/$example" "$shape" 10)
    high=$(count "target/release/examples/$example" "$shape" 30)
    per[$shape]=$(( (high - low) / 20000 ))
  done
  awk -v e="$example" -v a="${per[async]}" -v t="${per[tokio]}" -v c="${per[actor]}" -v m="${per[mpsc]}" -v p="${per[plain]}" -v q="${per[pair]}" 'BEGIN {
    printf "%s: async task %d vs tokio spawn %d (%.2fx); actor call %d vs bare actor %d (%.2fx); plain task %d; async task of two refs %d\n", e, a, t, a / t, c, m, c / m, p, q
  }'
  unset per
done
