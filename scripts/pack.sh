#!/usr/bin/env bash
# Packs the engine and its libraries (Popo.Engine, Popo.Rewards, Popo.MathVerify, Popo.Jinja, Popo.Kernels, Popo.Scripting) as NuGet
# packages into a folder, for a local feed: scripts/pack.sh OUT_DIR [extra dotnet pack arguments, e.g. -p:Version=0.1.1]
# Paket's restore targets turn each project's paket.references into package dependencies (TorchSharp,
# libtorch-cpu-linux-x64, ...), with the versions of paket.lock as lower bounds.
set -euo pipefail
if [ $# -lt 1 ]; then echo "usage: scripts/pack.sh OUT_DIR [dotnet pack arguments]" >&2; exit 2; fi
root="$(cd "$(dirname "$0")/.." && pwd)"
mkdir -p "$1"
out="$(cd "$1" && pwd)"
shift
cd "$root"
dotnet tool restore >/dev/null
# Packing the engine packs the libraries it references too (each project is packed on its own below so that
# every package is there even when only a library changed).
for project in src/Popo.Rewards src/Popo.MathVerify src/Popo.Jinja src/Popo.Kernels src/Popo.Scripting src/Popo.Engine; do
    dotnet pack "$project" -c Release -o "$out" --nologo "$@"
done
ls "$out"/*.nupkg
