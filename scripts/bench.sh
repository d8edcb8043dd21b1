#!/usr/bin/env bash
# Runs the benchmarks behind docs/PERFORMANCE.md against a real Redis and
# writes the raw `go test -bench` output to bench.txt (benchstat reads it).
# Usage: scripts/bench.sh [count]   (default count 3)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
export AGENTHUB_TEST_REDIS="${AGENTHUB_TEST_REDIS:-redis://127.0.0.1:6379/9}"
count="${1:-3}"
out=bench.txt
: > "$out"
run() { go test -run '^$' -benchmem -count "$count" "$@" | tee -a "$out"; }
run -bench . -benchtime 2s ./internal/store/redisstore/
run -bench 'Put|CompareAndSwap|AppendParallel|AppendBatched' ./internal/store/boltstore/
run -bench 'RecordParallel|RecordSerial|Verify' -benchtime 3s ./internal/audit/
run -bench . -benchtime 2s ./internal/vault/
echo "raw figures in $out"
