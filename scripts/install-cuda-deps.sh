#!/usr/bin/env bash
# Installs what compiling the CUDA build (-tags t2mcuda) needs on Debian bookworm: cuda.h and libcuda.so for linking
# (nvidia-cuda-dev) and nvcc 11.8 for `make kernels` (nvidia-cuda-toolkit), from the contrib/non-free sections.
# Idempotent; used by `make cuda-deps` and CI. The GPU machine itself needs none of this.
set -euo pipefail
if [ -f /usr/include/cuda.h ] && command -v nvcc >/dev/null 2>&1; then exit 0; fi
SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
src=/etc/apt/sources.list.d/debian-nonfree.sources
if [ ! -f "$src" ]; then
  $SUDO tee "$src" >/dev/null <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: contrib non-free
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nvidia-cuda-toolkit nvidia-cuda-dev >/dev/null
