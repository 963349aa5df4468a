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
    # cpu_ticks: user + system CPU time of the process (clock ticks), which other processes do not inflate
    printf 't_s\trss_kib\tlast_step\tcpu_ticks\n' >"$rss"
    while (( SECONDS - start < DURATION )) && kill -0 "$pid" 2>/dev/null; do
        local kib step ticks
        kib=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo "")
        ticks=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)
        step=$(tail -n 1 "$run/metrics.jsonl" 2>/dev/null | jq -r '.step // 0' 2>/dev/null || echo 0)
        [[ -n "$kib" ]] && printf '%d\t%s\t%s\t%s\n' $((SECONDS - start)) "$kib" "${step:-0}" "${ticks:-0}" >>"$rss"
        sleep "$INTERVAL"
    done
    if kill -0 "$pid" 2>/dev/null; then kill "$pid"; wait "$pid" 2>/dev/null || true
    else echo "popo exited early:"; tail -n 5 "$OUT/long.stderr"; fi
    echo "== long: ran $((SECONDS - start)) s"
    summarise "$run" "$rss"
}

# Warm-up = the supervised phase plus WARMUP_FRACTION of the RL phase. After it: RSS (median, min, max)
# per tenth of the time, growth of the last tenth's median over the first's, the least-squares RSS slope,
# and median step times per tenth of the steps (wall clock: other processes on the machine show here).
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
print(f"RL steps: {len(rows)}; RSS samples: {len(rl)} in RL over {t1 - t0:.0f} s, {len(warm)} after warm-up (from t={warm[0][0]:.0f} s, step {warm[0][2]:.0f})")
k = max(1, len(warm) // 10)
tenths = [warm[i * k:(i + 1) * k] for i in range(len(warm) // k)]
print("RSS MiB per tenth after warm-up (median / min / max):")
for i, w in enumerate(tenths):
    print(f"  {i}: t {w[0][0]:.0f}-{w[-1][0]:.0f} s, steps {w[0][2]:.0f}-{w[-1][2]:.0f}: "
          f"{st.median(s[1] for s in w)/1024:.1f} / {min(s[1] for s in w)/1024:.1f} / {max(s[1] for s in w)/1024:.1f}")
first, last = st.median(s[1] for s in tenths[0]), st.median(s[1] for s in tenths[-1])
floor0, floor1 = min(s[1] for s in tenths[0]), min(s[1] for s in tenths[-1])
print(f"RSS floor (minimum) growth after warm-up, last tenth over first: {100 * (floor1 - floor0) / floor0:+.2f} %")
if len(warm[0]) > 3:
    tick = 100.0   # USER_HZ
    print("CPU ms per RL step per tenth (process user + system time, unaffected by waiting for the CPU):")
    for i, w in enumerate(tenths):
        end = tenths[i + 1][0] if i + 1 < len(tenths) else w[-1]
        steps = end[2] - w[0][2]
        if steps > 0:
            print(f"  {i}: steps {w[0][2]:.0f}-{end[2]:.0f}: {1000 * (end[3] - w[0][3]) / tick / steps:.0f}")
n = len(warm); mt = sum(s[0] for s in warm) / n; mr = sum(s[1] for s in warm) / n
slope = sum((s[0] - mt) * (s[1] - mr) for s in warm) / sum((s[0] - mt) ** 2 for s in warm)
print(f"RSS growth after warm-up (last tenth's median over the first's): {100 * (last - first) / first:+.2f} %; "
      f"least-squares slope {slope * 3600 / 1024:+.1f} MiB/h ({100 * slope * 3600 / mr:+.2f} % of the mean per hour)")
after = [r for r in rows if r["step"] >= warm[0][2]]
k = max(1, len(after) // 10)
print("median step time per tenth of the steps after warm-up (ms; rollout + update), mean completion length:")
for i in range(len(after) // k):
    w = after[i * k:(i + 1) * k]
    print(f"  {i}: steps {w[0]['step']}-{w[-1]['step']}: {st.median(r['step_time'] for r in w)*1000:.0f} "
          f"({st.median(r['rollout_time'] for r in w)*1000:.0f} + {st.median(r['update_time'] for r in w)*1000:.0f}), "
          f"length {st.mean(r['completion_len_mean'] for r in w):.1f}")
PY
}

case "$part" in
    kill) kill_part ;;
    long) long_part ;;
    all) kill_part; long_part ;;
    *) echo "usage: $0 [kill|long|all]" >&2; exit 2 ;;
esac
echo "outputs in $OUT"
