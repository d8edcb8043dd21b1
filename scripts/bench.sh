#!/usr/bin/env bash
# Runs the benchmarks behind docs/PERFORMANCE.md against a real Redis and
# writes the raw `go test -bench` output to bench.txt (benchstat reads it).
# Usage: scripts/bench.sh [count] [all|slack]   (default count 3, all)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
export AGENTHUB_TEST_REDIS="${AGENTHUB_TEST_REDIS:-redis://127.0.0.1:6379/9}"
count="${1:-3}"
out=bench.txt
: > "$out"
run() { go test -run '^$' -benchmem -count "$count" "$@" | tee -a "$out"; }
if [[ "${2:-all}" != "slack" ]]; then
run -bench . -benchtime 2s ./internal/store/redisstore/
run -bench 'Put|CompareAndSwap|AppendParallel|AppendBatched' ./internal/store/boltstore/
run -bench 'RecordParallel|RecordSerial|Verify' -benchtime 3s ./internal/audit/
run -bench . -benchtime 2s ./internal/vault/
fi

# The Slack app under load (docs/PERFORMANCE.md, "Slack app"): the real bot
# binary against the fake Slack, 30 s at 1,000 and 2,000 mentions per
# second, on the embedded store and on Redis. Pass "slack" as the second
# argument to run only these.
if [[ "${2:-all}" == "slack" || "${2:-all}" == "all" ]]; then
	go build -o /tmp/agenthub-bench-bot ./cmd/bot
	for rate in 1000 2000; do
		for st in "" "$AGENTHUB_TEST_REDIS"; do
			echo "== slackload -rate $rate -store ${st:-bolt}" | tee -a "$out"
			go run ./cmd/slackload -bot /tmp/agenthub-bench-bot -rate "$rate" -duration 30s -users 100 ${st:+-store "$st"} 2>&1 | tee -a "$out"
		done
	done
fi
echo "raw figures in $out"
