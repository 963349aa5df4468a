#!/usr/bin/env bash
# Reproduces the tables of RESULTS.md, one `popo compare` per table:
#   scripts/results.sh [NAME ...]     NAME: arithmetic-mid arithmetic-sparse countdown-mid countdown-sparse ablations
# (no NAME = all five). Each writes OUT/NAME/report.md, compare.json and the plots.
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

table() {
  case "$1" in
    arithmetic-mid|arithmetic-sparse|countdown-mid|countdown-sparse)
      popo compare --config "configs/results/$1.toml" --algos "$algorithms" --seeds "$seeds" --out "$out/$1" ;;
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
    *) echo "scripts/results.sh: unknown table '$1' (expected arithmetic-mid, arithmetic-sparse, countdown-mid, countdown-sparse or ablations)" >&2; exit 2 ;;
  esac
}

names=("$@")
[ ${#names[@]} -eq 0 ] && names=(arithmetic-mid arithmetic-sparse countdown-mid countdown-sparse ablations)
for name in "${names[@]}"; do
  start=$(date +%s)
  table "$name"
  echo "$name: $(( $(date +%s) - start )) s" >&2
done
