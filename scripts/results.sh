#!/usr/bin/env bash
# Reproduces the tables of RESULTS.md, one `popo compare` per table:
#   scripts/results.sh [NAME ...]     NAME: arithmetic-mid arithmetic-sparse countdown-mid countdown-sparse ablations
#                                     decomposed-SETTING (SETTING one of the four; POPO against PSR, NSR, W-REINFORCE, pass@k to 256)
#                                     lr-sweep (the learning-rate sweep behind the decomposed tables' rates: two
#                                     comparisons, OUT/lr-sweep and OUT/lr-sweep-low)
# (no NAME = the first five). Each writes OUT/NAME/report.md, compare.json and the plots.
# SEEDS (default 5) and OUT (default runs/results) can be set in the environment; the committed
# results/ were made with OUT=results.
set -euo pipefail
cd "$(dirname "$0")/.."
dotnet tool restore >/dev/null
dotnet build -c Release src/Popo.Cli -v quiet -nologo >/dev/null
popo() { dotnet src/Popo.Cli/bin/Release/net10.0/popo.dll "$@"; }

seeds=${SEEDS:-5}
out=${OUT:-runs/results}
algorithms=popo,grpo,dr_grpo,dapo,rft
# Each algorithm at the rate the lr-sweep table picked (the best mean final pass@1 on arithmetic-mid, 2 seeds).
decomposed=(--variant popo:algo=popo,lr=3e-4 --variant grpo:algo=grpo,lr=3e-4 --variant psr:algo=psr,lr=3e-4
            --variant nsr:algo=nsr,lr=1e-4 --variant w_reinforce:algo=w_reinforce,lr=1e-4)

table() {
  case "$1" in
    arithmetic-mid|arithmetic-sparse|countdown-mid|countdown-sparse)
      popo compare --config "configs/results/$1.toml" --algos "$algorithms" --seeds "$seeds" --out "$out/$1" ;;
    decomposed-arithmetic-mid|decomposed-arithmetic-sparse|decomposed-countdown-mid|decomposed-countdown-sparse)
      popo compare --config "configs/results/${1#decomposed-}.toml" "${decomposed[@]}" --seeds "$seeds" --passk 256 --out "$out/$1" ;;
    lr-sweep)
      # 3e-4 (the rate of Tables 1-3), 1e-4 and 1e-3 for every algorithm; then 3e-5 where 1e-4 was best (the grid's edge)
      sweep=()
      for algo in popo grpo psr nsr w_reinforce; do
        for lr in 1e-4 3e-4 1e-3; do sweep+=(--variant "${algo}_lr$lr:algo=$algo,lr=$lr"); done
      done
      popo compare --config configs/results/arithmetic-mid.toml "${sweep[@]}" --seeds 2 --passk 0 --out "$out/lr-sweep"
      popo compare --config configs/results/arithmetic-mid.toml --variant nsr_lr3e-5:algo=nsr,lr=3e-5 \
        --variant w_reinforce_lr3e-5:algo=w_reinforce,lr=3e-5 --variant w_reinforce_lr1e-4:algo=w_reinforce,lr=1e-4 \
        --variant w_reinforce_lr3e-4:algo=w_reinforce,lr=3e-4 --variant w_reinforce_lr1e-3:algo=w_reinforce,lr=1e-3 \
        --seeds 2 --passk 0 --out "$out/lr-sweep-low" ;;
    ablations)
      # POPO's components on the arithmetic-mid setting; group sizes keep prompts x group = 64 rollouts a step.
      popo compare --config configs/results/arithmetic-mid.toml --algos popo \
        --variant no_similarity:alpha=0 \
        --variant no_entropy:beta_ent=0 \
        --variant tau_0:tau=0 \
        --variant tau_1:tau=1 \
        --variant uniform_weights:weights=uniform \
        --variant last_token:pooling=last \
        --variant group_4:group_size=4,prompts_per_step=16 \
        --variant group_16:group_size=16,prompts_per_step=4 \
        --seeds "$seeds" --out "$out/ablations" ;;
    *) echo "scripts/results.sh: unknown table '$1' (expected arithmetic-mid, arithmetic-sparse, countdown-mid, countdown-sparse, ablations, decomposed-SETTING or lr-sweep)" >&2; exit 2 ;;
  esac
}

names=("$@")
[ ${#names[@]} -eq 0 ] && names=(arithmetic-mid arithmetic-sparse countdown-mid countdown-sparse ablations)
for name in "${names[@]}"; do
  start=$(date +%s)
  table "$name"
  echo "$name: $(( $(date +%s) - start )) s" >&2
done
