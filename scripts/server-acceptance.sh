#!/usr/bin/env bash
# Issue 31's acceptance, two processes: `popo serve` in one, `popo train --rollout-engine server` in another, on the
# built-in default task, against the built-in sampler, SEEDS seeds each (paired: seed s warms up the same way in both).
# Then EXTRA_SEEDS seeds with async_rollouts and against a deliberately mismatched server (--temperature-factor 1.2,
# TRL's correction defaults), and one seed against a server mismatched by 1.5, with the default sequence_mask and with
# token_truncate.
#   scripts/server-acceptance.sh   OUT (runs/server-acceptance), SEEDS (5), EXTRA_SEEDS (2), STEPS (200, the default run's)
# Prints one table (final held-out pass@1 per run, mean and sample sd per arm) and writes it to OUT/table.md.
# Run again with the same OUT, it keeps the finished runs and resumes an interrupted one.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-runs/server-acceptance}
seeds=${SEEDS:-5}
extra_seeds=${EXTRA_SEEDS:-2}
steps=${STEPS:-200}
dotnet tool restore >/dev/null
dotnet build -c Release src/Popo.Cli -v quiet -nologo >/dev/null
popo_dll=src/Popo.Cli/bin/Release/net10.0/popo.dll
popo() { dotnet "$popo_dll" "$@"; }
mkdir -p "$out"

# The server's first weights: any folder of the built-in layout (the first sync, before step 1, replaces them with
# each run's own warm-up).
start_model="$out/start/checkpoints/warmup/model"
[ -d "$start_model" ] || popo train --steps 0 --sft-steps 1 --eval-problems 0 --out "$out/start" 2>"$out/start.log"

servers=()
serve() {   # serve NAME [flags...]: starts `popo serve`, sets url to its base URL
  local name=$1; shift
  # dotnet itself in the background (not the function, whose subshell a kill would leave the server behind)
  dotnet "$popo_dll" serve --model "$start_model" --port 0 --threads 1 --served-model-name policy --logprobs-mode processed_logprobs "$@" \
    >"$out/$name.url" 2>"$out/$name.log" &
  servers+=($!)
  for _ in $(seq 1 240); do [ -s "$out/$name.url" ] && break; sleep 0.5; done
  url=$(head -1 "$out/$name.url")
  [ -n "$url" ] || { echo "popo serve ($name) printed no URL: $(cat "$out/$name.log")" >&2; exit 1; }
}
trap 'kill ${servers[@]+"${servers[@]}"} 2>/dev/null || true' EXIT

server_flags() { echo --rollout-engine server --rollout-urls "$1/v1" --rollout-model policy --sync-route sglang; }
serve matched;    matched=$url
serve mismatched --temperature-factor 1.2; mismatched=$url
serve mismatched15 --temperature-factor 1.5; mismatched15=$url

# run NAME URL [flags...]: one training run into OUT/NAME against the server at URL (none: the built-in sampler); a
# finished run is kept, an interrupted one resumed (against this invocation's server: its port is new).
run() {
  local name=$1 url=$2; shift 2
  if [ -f "$out/$name/summary.json" ]; then return; fi
  if [ -d "$out/$name" ]; then popo train --resume "$out/$name" ${url:+--rollout-urls "$url/v1"} 2>>"$out/$name.log"
  else popo train "$@" ${url:+$(server_flags "$url")} --out "$out/$name" 2>"$out/$name.log"; fi
}
for seed in $(seq 1 "$seeds"); do
  common=(--seed "$seed" --steps "$steps" --threads 1)
  run "builtin-seed$seed" "" "${common[@]}"
  run "server-seed$seed" "$matched" "${common[@]}"
  if [ "$seed" -le "$extra_seeds" ]; then
    run "async-seed$seed" "$matched" "${common[@]}" --async-rollouts true
    run "mismatched-seed$seed" "$mismatched" "${common[@]}"
  fi
  if [ "$seed" -eq 1 ]; then
    run "mismatched15-seed$seed" "$mismatched15" "${common[@]}"
    run "mismatched15-truncate-seed$seed" "$mismatched15" "${common[@]}" --importance-mode token_truncate
  fi
done

# summary.json: the second "Pass1" is the final evaluation's (the first is the warm-up's).
final() { grep -o '"Pass1": [0-9.eE+-]*' "$1/summary.json" | sed -n 2p | awk '{printf "%.3f", $2}'; }
warm() { grep -o '"Pass1": [0-9.eE+-]*' "$1/summary.json" | sed -n 1p | awk '{printf "%.3f", $2}'; }
# the mean of a metrics.jsonl column over the run
mean_of() { grep -o "\"$2\":[0-9.eE+-]*" "$1/metrics.jsonl" | awk -F: '{s += $2; n++} END {printf "%.4g", n ? s / n : 0}'; }
{
  echo "| arm | warm-up pass@1 per seed | final pass@1 per seed | mean ± sd | is_logp_diff | is_corrected | rollout_staleness |"
  echo "| --- | --- | --- | --- | --- | --- | --- |"
  for arm in builtin server async mismatched mismatched15 mismatched15-truncate; do
    n=$seeds; case $arm in async|mismatched) n=$extra_seeds ;; mismatched15*) n=1 ;; esac
    finals=(); warms=(); for seed in $(seq 1 "$n"); do
      finals+=("$(final "$out/$arm-seed$seed")"); warms+=("$(warm "$out/$arm-seed$seed")"); done
    stats=$(printf '%s\n' "${finals[@]}" | awk '{x[NR] = $1; s += $1} END {m = s / NR; for (i = 1; i <= NR; i++) v += (x[i] - m)^2; printf "%.3f ± %.3f", m, (NR > 1 ? sqrt(v / (NR - 1)) : 0)}')
    if [ "$arm" = builtin ]; then extra="- | - | -"; else
      extra="$(mean_of "$out/$arm-seed1" is_logp_diff) | $(mean_of "$out/$arm-seed1" is_corrected) | $(mean_of "$out/$arm-seed1" rollout_staleness)"; fi
    echo "| $arm | ${warms[*]} | ${finals[*]} | $stats | $extra |"
  done
  echo
  echo "(is_logp_diff, is_corrected, rollout_staleness: means over seed 1's steps)"
} | tee "$out/table.md"
