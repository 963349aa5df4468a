#!/usr/bin/env bash
# Mutation check (not part of CI: it is slow). Applies each small mutant of tests/mutants/*.patch, one at a
# time, in a scratch copy of this tree (never in the working tree), rebuilds, and runs the tests: first the
# test lists named on the patch's "# tests:" line (fast), then, if none failed, the whole suite under
# Expecto's runner. Prints one line per mutant: killed, survived, does not apply, or does not build.
# Exits non-zero if any mutant survived, did not apply or did not build.
#
#   scripts/mutants.sh            every mutant
#   scripts/mutants.sh 08 2[4-7]  only the mutants whose file names start with these globs, in that order
set -uo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
scratch="$(mktemp -d /tmp/popo-mutants.XXXXXX)"
trap 'rm -rf "$scratch"' EXIT
tree="$scratch/tree"
log="$scratch/log"
start=$(date +%s)

# The working tree as it is (committed or not), without build outputs or git metadata.
mkdir -p "$tree"
(cd "$repo" && tar --exclude=./.git --exclude='*/bin' --exclude='*/obj' --exclude=./runs -cf - .) | (cd "$tree" && tar -xf -)
cd "$tree"
echo "building the unmutated tree in $tree ..." >&2
if ! { dotnet tool restore && dotnet build -c Debug tests/Popo.Tests; } >"$log" 2>&1; then
    tail -20 "$log" >&2; echo "the unmutated tree does not build" >&2; exit 2
fi

suite() { timeout 3600 dotnet run --project tests/Popo.Tests -c Debug --no-build -- --summary "$@" >"$log" 2>&1; }

killed=0; total=0; bad=0
patterns=("$@"); [ ${#patterns[@]} -eq 0 ] && patterns=("")
for patch in $(for p in "${patterns[@]}"; do ls "$repo"/tests/mutants/${p}*.patch; done); do
    name="$(basename "$patch" .patch)"
    total=$((total + 1))
    t0=$(date +%s)
    if ! git apply --check "$patch" 2>/dev/null; then
        echo "does not apply  $name"; bad=$((bad + 1)); continue
    fi
    git apply "$patch"
    if ! dotnet build -c Debug tests/Popo.Tests --no-restore >"$log" 2>&1; then
        echo "does not build  $name"; bad=$((bad + 1))
    else
        hint="$(sed -n 's/^# tests: //p' "$patch" | head -1)"
        how=""
        if [ -n "$hint" ] && ! suite --filter-test-list "$hint"; then how="by $hint"
        elif ! suite; then how="by the full suite"
        fi
        if [ -n "$how" ]; then
            first="$(grep -a -o 'ERR[^]]*] [^ ]*[^.]*\.[^.]*' "$log" | head -1 | sed 's/.*] //' | tr -d '\033' | cut -c1-120)"
            killed=$((killed + 1)); echo "killed          $name ($how, $(( $(date +%s) - t0 )) s; first failure: $first)"
        else
            echo "survived        $name"; bad=$((bad + 1))
        fi
    fi
    git apply -R "$patch"
done
echo "$killed of $total mutants killed in $(( ($(date +%s) - start) / 60 )) min"
[ "$bad" -eq 0 ]
