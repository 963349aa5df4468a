#!/usr/bin/env bash
# Reliability soak (issue 10), not run in CI. Two parts:
#   kill  - TRIALS (default 20) SIGKILLs of a small `popo train` at seeded random moments, each checked as in
#           tests/Popo.Tests/Reliability/Kill.fs: the last checkpoint loads completely and equals the
#           uninterrupted run's at that step; `--resume` ends bitwise equal (weights, metrics, samples, summary).
#   long  - the default task (built-in model, warm-up, POPO) for DURATION seconds (default 7200) at --threads 1,
#           sampling the process's resident memory (VmRSS) every INTERVAL seconds, then reporting RSS growth
#           after warm-up and step time early vs late (from metrics.jsonl).
# Usage: scripts/soak.sh [kill|long|all]   (env: TRIALS, DURATION, INTERVAL, OUT, WARMUP_FRACTION)
# Results (with the exact command and real duration) go in BENCHMARKS.md, section "Soak".
set -euo pipefail
cd "$(dirname "$0")/.."
part="${1:-all}"
TRIALS="${TRIALS:-20}"
DURATION="${DURATION:-7200}"
INTERVAL="${INTERVAL:-10}"
WARMUP_FRACTION="${WARMUP_FRACTION:-0.2}"
OUT="${OUT:-$(mktemp -d /tmp/popo-soak-XXXXXX)}"

kill_part() {
    dotnet build tests/Popo.Tests -v q -nologo >/dev/null
    echo "== kill: $TRIALS trials"
    POPO_KILL_TRIALS="$TRIALS" dotnet run --no-build --project tests/Popo.Tests -- \
        --filter "reliability/kill" --sequenced --summary
}

long_part() {
    dotnet build -c Release src/Popo.Cli -v q -nologo >/dev/null
    local run="$OUT/long" rss="$OUT/rss.tsv"
    mkdir -p "$OUT"
    # The default configuration with enough RL steps to outlast DURATION; no LR warm-up so the learning
    # rate stays at the default's peak (a cosine over 10^6 steps is flat over a few hours).
    local cmd=(dotnet src/Popo.Cli/bin/Release/net10.0/popo.dll train --out "$run" --threads 1
               --steps 1000000 --warmup-ratio 0 --save-every 200 --eval-every 200)
    echo "== long: ${cmd[*]} for $DURATION s (RSS every $INTERVAL s -> $rss)"
    "${cmd[@]}" 2>"$OUT/long.stderr" &
    local pid=$! start=$SECONDS
    printf 't_s\trss_kib\tlast_step\n' >"$rss"
    while (( SECONDS - start < DURATION )) && kill -0 "$pid" 2>/dev/null; do
        local kib step
        kib=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo "")
        step=$(tail -n 1 "$run/metrics.jsonl" 2>/dev/null | jq -r '.step // 0' 2>/dev/null || echo 0)
        [[ -n "$kib" ]] && printf '%d\t%s\t%s\n' $((SECONDS - start)) "$kib" "${step:-0}" >>"$rss"
        sleep "$INTERVAL"
    done
    if kill -0 "$pid" 2>/dev/null; then kill "$pid"; wait "$pid" 2>/dev/null || true
    else echo "popo exited early:"; tail -n 5 "$OUT/long.stderr"; fi
    echo "== long: ran $((SECONDS - start)) s"
    summarise "$run" "$rss"
}

# RSS growth from the first sample at or after WARMUP_FRACTION of the RL phase (warm-up = the supervised
# phase plus that share of RL) to the end; step time of the first and last 10% of RL steps after it.
summarise() {
    local run="$1" rss="$2"
    python3 - "$run/metrics.jsonl" "$rss" "$WARMUP_FRACTION" <<'PY'
import json, sys, statistics as st
metrics, rss_file, frac = sys.argv[1], sys.argv[2], float(sys.argv[3])
rows = [json.loads(l) for l in open(metrics) if l.strip()]
samples = [tuple(map(float, l.split('\t'))) for l in open(rss_file).read().splitlines()[1:]]
rl = [s for s in samples if s[2] >= 1]
if not rows or not rl:
    sys.exit("no RL steps recorded")
t0, t1 = rl[0][0], rl[-1][0]
warm = [s for s in rl if s[0] >= t0 + frac * (t1 - t0)]
base, end, peak = warm[0][1], warm[-1][1], max(s[1] for s in warm)
print(f"RL steps: {len(rows)}; RSS samples in RL: {len(rl)} over {t1 - t0:.0f} s")
print(f"RSS after warm-up (t={warm[0][0]:.0f} s, step {warm[0][2]:.0f}): {base/1024:.1f} MiB; "
      f"end (t={warm[-1][0]:.0f} s, step {warm[-1][2]:.0f}): {end/1024:.1f} MiB; peak after warm-up {peak/1024:.1f} MiB")
print(f"RSS growth after warm-up: {100*(end-base)/base:+.2f} % (end), {100*(peak-base)/base:+.2f} % (peak)")
after = [r for r in rows if r["step"] >= warm[0][2]]
k = max(1, len(after) // 10)
def times(rs, key): return [r[key] for r in rs if r.get(key) is not None]
for key in ("step_time", "rollout_time", "update_time"):
    a, b = times(after[:k], key), times(after[-k:], key)
    print(f"{key}: first {k} steps after warm-up median {st.median(a)*1000:.1f} ms, last {k} median {st.median(b)*1000:.1f} ms "
          f"({100*(st.median(b)-st.median(a))/st.median(a):+.1f} %)")
lens = times(after[:k], "completion_len_mean"), times(after[-k:], "completion_len_mean")
print(f"completion_len_mean: {st.mean(lens[0]):.2f} -> {st.mean(lens[1]):.2f} (step time follows completion length)")
PY
}

case "$part" in
    kill) kill_part ;;
    long) long_part ;;
    all) kill_part; long_part ;;
    *) echo "usage: $0 [kill|long|all]" >&2; exit 2 ;;
esac
echo "outputs in $OUT"
