#!/usr/bin/env bash
# Installs the Debian packages whose files the build reads, when those files are missing:
#   libgloo-dev          gloo's C++ headers, for csrc/fixclf_dist.cpp: c10d's
#                        ProcessGroupGloo.hpp includes them, and the torch wheel ships
#                        libtorch_cpu with gloo compiled in but not its headers. Only the
#                        headers are read; nothing of Debian's libgloo is linked.
#   libjpeg62-turbo-dev  libjpeg-turbo's headers and static library, for csrc/fixclf_jpeg.c:
#                        linked statically, the build inside Debian's Pillow, so that JPEG
#                        pixels are Pillow's.
# Idempotent: does nothing when the files are there (FIXCLF_GLOO_INCLUDE, FIXCLF_JPEG_INCLUDE
# and FIXCLF_JPEG_LIB may name other folders holding gloo/algorithm.h, jpeglib.h, libjpeg.a).
set -euo pipefail

gloo="${FIXCLF_GLOO_INCLUDE:-/usr/include}/gloo/algorithm.h"
jpeg_h="${FIXCLF_JPEG_INCLUDE:-/usr/include}/jpeglib.h"
jpeg_a="${FIXCLF_JPEG_LIB:-/usr/lib/$(uname -m)-linux-gnu}/libjpeg.a"
missing=()
[ -f "$gloo" ] || missing+=(libgloo-dev)
{ [ -f "$jpeg_h" ] && [ -f "$jpeg_a" ]; } || missing+=(libjpeg62-turbo-dev)
[ ${#missing[@]} = 0 ] && exit 0

if ! command -v apt-get >/dev/null; then
  echo "setup-debian: missing ${missing[*]} (files $gloo, $jpeg_h, $jpeg_a) and there is no" \
       "apt-get; install them and set FIXCLF_GLOO_INCLUDE, FIXCLF_JPEG_INCLUDE, FIXCLF_JPEG_LIB" >&2
  exit 1
fi
sudo=()
[ "$(id -u)" = 0 ] || sudo=(sudo)
echo "setup-debian: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null \
  || { "${sudo[@]}" apt-get update -qq >/dev/null && "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null; } \
  || { echo "setup-debian: apt-get install ${missing[*]} failed" >&2; exit 1; }
for f in "$gloo" "$jpeg_h" "$jpeg_a"; do
  [ -f "$f" ] || { echo "setup-debian: ${missing[*]} installed but $f is missing" >&2; exit 1; }
done
