#!/usr/bin/env bash
# Places WikiText-2 and PTB under data/ (data/wikitext-2/{train,valid,test}.txt,
# data/ptb/{train,valid,test}.txt) and verifies their SHA-256 against data/SHA256SUMS.
# Source: ../shared/data when present (FIXCLF_SHARED_DATA overrides), else the official archives.
#
# With --vision it places Fashion-MNIST instead (data/fashion-mnist/{train,t10k}-{images-idx3,
# labels-idx1}-ubyte.gz, verified against data/FASHION-MNIST.SHA256SUMS). Source, first that
# verifies: ../shared/data/fashion-mnist; the Debian package dataset-fashion-mnist
# (/usr/share/datasets/fashion-mnist, FIXCLF_FASHION_MNIST_DIR overrides; installed with
# apt-get when missing, through sudo when not root); else the official GitHub files.
# Files from a folder are linked, downloaded ones copied. CIFAR-10/100 cannot be fetched here:
# see data/README.md.
# Idempotent: files that are present and verify are left alone.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
shared="${FIXCLF_SHARED_DATA:-$here/../../shared/data}"
WT2_URL="https://s3.amazonaws.com/research.metamind.io/wikitext/wikitext-2-v1.zip"
PTB_URL="http://www.fit.vutbr.cz/~imikolov/rnnlm/simple-examples.tgz"
FMNIST_SYSTEM="${FIXCLF_FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}"
FMNIST_DEB="dataset-fashion-mnist"
FMNIST_URL="https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion"
FMNIST_FILES=(train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz
  t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz)

vision=0
for arg in "$@"; do
  case "$arg" in
    --vision) vision=1 ;;
    -h | --help)
      echo "usage: data/fetch.sh [--vision]   (no option: WikiText-2 and PTB; --vision: Fashion-MNIST)"
      exit 0
      ;;
    *)
      echo "data/fetch.sh: unknown option '$arg'; use --vision for Fashion-MNIST, no option for WikiText-2 and PTB" >&2
      exit 2
      ;;
  esac
done

# True when folder $1 holds the four Fashion-MNIST files with the expected SHA-256.
fmnist_verified_in() {
  local f want got
  for f in "${FMNIST_FILES[@]}"; do
    [ -f "$1/$f" ] || return 1
    want=$(awk -v f="fashion-mnist/$f" '$2 == f { print $1 }' FASHION-MNIST.SHA256SUMS)
    got=$(sha256sum <"$1/$f" | cut -d' ' -f1)
    [ -n "$want" ] && [ "$want" = "$got" ] || return 1
  done
}

# Installs the Debian package (apt-get update first when the plain install fails).
fmnist_install_deb() {
  local sudo=()
  command -v apt-get >/dev/null 2>&1 || return 1
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
      sudo=(sudo -n)
    else
      echo "data: not root and no password-less sudo: cannot install $FMNIST_DEB" >&2
      return 1
    fi
  fi
  echo "data: installing the Debian package $FMNIST_DEB" >&2
  ${sudo[@]+"${sudo[@]}"} apt-get install -y -q "$FMNIST_DEB" >&2 \
    || { ${sudo[@]+"${sudo[@]}"} apt-get update -q >&2 \
      && ${sudo[@]+"${sudo[@]}"} apt-get install -y -q "$FMNIST_DEB" >&2; }
}

fetch_vision() {
  local f src="" tmp
  if sha256sum --quiet -c FASHION-MNIST.SHA256SUMS >/dev/null 2>&1; then
    echo "data: Fashion-MNIST present and verified" >&2
    return 0
  fi
  if fmnist_verified_in "$shared/fashion-mnist"; then
    src="$(cd "$shared/fashion-mnist" && pwd)"
  else
    if ! fmnist_verified_in "$FMNIST_SYSTEM"; then
      fmnist_install_deb || echo "data: could not install $FMNIST_DEB (see above)" >&2
    fi
    if fmnist_verified_in "$FMNIST_SYSTEM"; then
      src="$FMNIST_SYSTEM"
    elif [ -d "$FMNIST_SYSTEM" ]; then
      echo "data: $FMNIST_SYSTEM does not hold the four verified files; downloading instead" >&2
    fi
  fi
  mkdir -p fashion-mnist
  if [ -n "$src" ]; then
    echo "data: linking Fashion-MNIST from $src" >&2
    for f in "${FMNIST_FILES[@]}"; do ln -sfn "$src/$f" "fashion-mnist/$f"; done
  else
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    echo "data: downloading Fashion-MNIST from $FMNIST_URL" >&2
    for f in "${FMNIST_FILES[@]}"; do
      if ! curl -fsSL --connect-timeout 30 "$FMNIST_URL/$f" -o "$tmp/$f"; then
        echo "data: could not download $FMNIST_URL/$f; install the Debian package $FMNIST_DEB or put the four files (${FMNIST_FILES[*]}) in $here/fashion-mnist/ and rerun data/fetch.sh --vision" >&2
        exit 1
      fi
    done
    for f in "${FMNIST_FILES[@]}"; do
      rm -f "fashion-mnist/$f"
      mv "$tmp/$f" "fashion-mnist/$f"
    done
  fi
  if ! sha256sum --quiet -c FASHION-MNIST.SHA256SUMS; then
    echo "data: checksum mismatch in $here/fashion-mnist (see above); delete the listed files and rerun data/fetch.sh --vision" >&2
    exit 1
  fi
  echo "data: Fashion-MNIST verified" >&2
}

cd "$here"
if [ "$vision" = 1 ]; then
  fetch_vision
  exit 0
fi
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
