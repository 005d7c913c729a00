#!/usr/bin/env bash
# Installs gloo's C++ headers (Debian's libgloo-dev), which csrc/fixclf_dist.cpp needs to
# compile against c10d's ProcessGroupGloo.hpp: the torch wheel ships libtorch_cpu with gloo
# compiled in but not gloo's headers. Nothing of Debian's libgloo is linked; only the
# headers are read. Idempotent: does nothing when the headers are there (or
# FIXCLF_GLOO_INCLUDE names a folder holding gloo/algorithm.h).
set -euo pipefail

include="${FIXCLF_GLOO_INCLUDE:-/usr/include}"
[ -f "$include/gloo/algorithm.h" ] && exit 0

if ! command -v apt-get >/dev/null; then
  echo "setup-gloo: gloo's headers are missing ($include/gloo/algorithm.h) and there is no apt-get;" \
       "install gloo's headers and set FIXCLF_GLOO_INCLUDE to their folder" >&2
  exit 1
fi
sudo=()
[ "$(id -u)" = 0 ] || sudo=(sudo)
echo "setup-gloo: installing libgloo-dev (gloo's headers, for the distributed shim)" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get install -y -qq libgloo-dev >/dev/null \
  || { "${sudo[@]}" apt-get update -qq >/dev/null && "${sudo[@]}" apt-get install -y -qq libgloo-dev >/dev/null; } \
  || { echo "setup-gloo: apt-get install libgloo-dev failed" >&2; exit 1; }
[ -f /usr/include/gloo/algorithm.h ] \
  || { echo "setup-gloo: libgloo-dev installed but /usr/include/gloo/algorithm.h is missing" >&2; exit 1; }
