#!/usr/bin/env bash
# Places WikiText-2 and PTB under data/ (data/wikitext-2/{train,valid,test}.txt,
# data/ptb/{train,valid,test}.txt) and verifies their SHA-256 against data/SHA256SUMS.
# Source: ../shared/data when present (FIXCLF_SHARED_DATA overrides), else the official archives.
# Idempotent: files that are present and verify are left alone.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
shared="${FIXCLF_SHARED_DATA:-$here/../../shared/data}"
WT2_URL="https://s3.amazonaws.com/research.metamind.io/wikitext/wikitext-2-v1.zip"
PTB_URL="http://www.fit.vutbr.cz/~imikolov/rnnlm/simple-examples.tgz"

cd "$here"
if sha256sum --quiet -c SHA256SUMS >/dev/null 2>&1; then
  echo "data: WikiText-2 and PTB present and verified" >&2
  exit 0
fi
mkdir -p wikitext-2 ptb
if [ -d "$shared/wikitext-2" ] && [ -d "$shared/ptb" ]; then
  echo "data: copying from $shared" >&2
  for f in wikitext-2/{train,valid,test}.txt ptb/{train,valid,test}.txt; do
    cp "$shared/$f" "$f.tmp" && mv "$f.tmp" "$f"
  done
else
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  echo "data: downloading WikiText-2 from $WT2_URL" >&2
  curl -fsSL "$WT2_URL" -o "$tmp/wt2.zip"
  (cd "$tmp" && unzip -q wt2.zip)
  for s in train valid test; do mv "$tmp/wikitext-2/wiki.$s.tokens" "wikitext-2/$s.txt"; done
  echo "data: downloading PTB from $PTB_URL" >&2
  curl -fsSL "$PTB_URL" -o "$tmp/ptb.tgz"
  tar -xzf "$tmp/ptb.tgz" -C "$tmp"
  for s in train valid test; do mv "$tmp/simple-examples/data/ptb.$s.txt" "ptb/$s.txt"; done
fi
if ! sha256sum --quiet -c SHA256SUMS; then
  echo "data: checksum mismatch in $here (see above); delete the listed files and rerun data/fetch.sh" >&2
  exit 1
fi
echo "data: WikiText-2 and PTB verified" >&2
