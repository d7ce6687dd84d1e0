#!/usr/bin/env bash
# podman and podman-compose on a Debian/Ubuntu host, for `make test-compose` and docs/deployment.md.
#
#   deploy/podman-setup.sh [VENV]     # VENV: where podman-compose goes (default .venv-compose)
#
# Installs with apt what is missing (root only): podman, buildah, runc (crun refuses cgroup v1
# hybrids), fuse-overlayfs, slirp4netns, uidmap, catatonit (compose's `init: true`) and debootstrap
# (deploy/base-images.sh). Then podman-compose from PyPI into its own virtual environment (Debian 12's
# package is 1.0.3, which lacks what docker-compose.yml uses). Exits non-zero, saying why, when
# something cannot be had; what was already there stays.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:-.venv-compose}
compose_version=${PODMAN_COMPOSE_VERSION:-1.6.0}
packages=(podman buildah runc fuse-overlayfs slirp4netns uidmap catatonit debootstrap)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "podman-setup: missing ${missing[*]}; install them as root with apt-get" >&2
    exit 1
  fi
  started=$SECONDS
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  echo "podman-setup: installed ${missing[*]} in $((SECONDS - started)) s" >&2
fi
if [ ! -x "$venv/bin/podman-compose" ] || ! "$venv/bin/podman-compose" version 2>/dev/null | grep -q "$compose_version"; then
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "podman-compose==$compose_version"
fi
echo "podman-setup: $(podman --version), podman-compose $compose_version in $venv" >&2
