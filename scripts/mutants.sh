#!/usr/bin/env bash
# Mutation check (not part of CI: it is slow). Applies each small mutant of tests/mutants/*.patch, one at a
# time, in a scratch copy of this tree (never in the working tree), rebuilds, and runs the tests: first the
# test lists named on the patch's "# tests:" line (fast), then, if none failed, the whole suite under
# Expecto's runner. Prints one line per mutant: killed, survived, does not apply, or does not build.
# Exits non-zero if any mutant survived, did not apply or did not build.
#
# A killed mutant's line names every test that failed in the run that killed it.
#
#   scripts/mutants.sh            every mutant
#   scripts/mutants.sh 08 2[4-7]  only the mutants whose file names start with these globs, in that order
#   scripts/mutants.sh --areas    builds nothing: lists the areas of tests/mutants/areas without a mutant, the
#                                 folders of src/ with source files but no area, and mutants whose "# area:" line is
#                                 missing, unknown, or names an area none of whose paths the patch changes
set -uo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"

if [ "${1:-}" = "--areas" ]; then
    cd "$repo"
    areas=tests/mutants/areas
    problems=0
    declare -A paths covered
    while read -r name rest; do
        case "$name" in ''|'#'*) continue ;; esac
        paths[$name]="$rest"; covered[$name]=0
    done <"$areas"
    under() { local file="$1"; shift; for p in "$@"; do case "$file" in "$p"*) return 0 ;; esac; done; return 1; }
    for patch in tests/mutants/*.patch; do
        name="$(basename "$patch" .patch)"
        area="$(sed -n 's/^# area: *//p' "$patch" | head -1)"
        if [ -z "$area" ]; then echo "mutant without an area: $name"; problems=$((problems + 1)); continue; fi
        if [ -z "${paths[$area]+x}" ]; then echo "mutant $name names an unknown area: $area"; problems=$((problems + 1)); continue; fi
        inside=0
        for file in $(sed -n 's|^+++ b/||p' "$patch"); do under "$file" ${paths[$area]} && inside=1; done
        if [ "$inside" -eq 0 ]; then echo "mutant $name changes no path of its area $area (${paths[$area]})"; problems=$((problems + 1)); continue; fi
        covered[$area]=$((covered[$area] + 1))
    done
    for area in "${!paths[@]}"; do
        [ "${covered[$area]}" -eq 0 ] && { echo "area without a mutant: $area (${paths[$area]})"; problems=$((problems + 1)); }
    done
    folders="$(find src \( -name bin -o -name obj \) -prune -o -type f \( -name '*.cs' -o -name '*.fs' \) -print | xargs -n1 dirname | sort -u)"
    all="$(for a in "${!paths[@]}"; do echo ${paths[$a]}; done)"
    for folder in $folders; do
        under "$folder/" $all || { echo "folder without an area: $folder/"; problems=$((problems + 1)); }
    done
    echo "$(ls tests/mutants/*.patch | wc -l) mutants over ${#paths[@]} areas; $problems problem(s)"
    [ "$problems" -eq 0 ]; exit
fi
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
            # every failed or errored test of the killing run, colour codes stripped
            failed="$(sed 's/\x1b\[[0-9;]*[A-Za-z]//g' "$log" | grep -a -o 'ERR\] .* \(failed\|errored\) in' | sed 's/^ERR\] //; s/ \(failed\|errored\) in$//' | sort -u | paste -sd ';' | sed 's/;/; /g')"
            # none reported: the test process itself died (a native crash); its last line says how
            [ -z "$failed" ] && failed="no test reported failing; the run ended with: $(sed 's/\x1b\[[0-9;]*[A-Za-z]//g' "$log" | grep -a -v '^[[:space:]]*$' | tail -1 | cut -c1-160)"
            killed=$((killed + 1)); echo "killed          $name ($how, $(( $(date +%s) - t0 )) s; failed: $failed)"
        else
            echo "survived        $name"; bad=$((bad + 1))
        fi
    fi
    git apply -R "$patch"
done
echo "$killed of $total mutants killed in $(( ($(date +%s) - start) / 60 )) min"
[ "$bad" -eq 0 ]
