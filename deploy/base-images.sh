#!/usr/bin/env bash
# The base images docker-compose.yml builds on, with or without a registry.
#
#   deploy/base-images.sh >> .env      # then build and start as docs/deployment.md says
#
# For each of the two bases it pulls the official image; when that cannot be pulled (no registry
# reachable), or with LESSLABELS_BASE=local, it builds a replacement from Debian packages:
#   docker.io/library/python:3.11-slim -> localhost/lesslabels-python:bookworm (Debian 12's python3 3.11, venv)
#   docker.io/library/postgres:16      -> localhost/lesslabels-postgres:15 (Debian 12's postgresql 15, same variables)
# both on localhost/debian-base:bookworm, a minimal Debian made with debootstrap from the apt mirror
# (DEBIAN_MIRROR, default http://deb.debian.org/debian; root and debootstrap needed).
# On stdout: the variables docker-compose.yml reads to use them (LESSLABELS_PYTHON_IMAGE,
# LESSLABELS_POSTGRES_IMAGE, LESSLABELS_POSTGRES_VERSION); progress goes to stderr.
# The engine is $CONTAINER_ENGINE, else podman where installed, else docker. Exit code 3: no base image
# can be had here (none pulled, and debootstrap missing, not root, or the mirror out of reach).
set -euo pipefail
cd "$(dirname "$0")"
engine=${CONTAINER_ENGINE:-$(command -v podman >/dev/null 2>&1 && echo podman || echo docker)}
mode=${LESSLABELS_BASE:-auto}  # auto: pull, else build; local: always build; pull: never build
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
security_mirror=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
suite=bookworm
base=localhost/debian-base:$suite
python_official=docker.io/library/python:3.11-slim
python_local=localhost/lesslabels-python:$suite
postgres_version=${LESSLABELS_POSTGRES_VERSION:-16}
postgres_local_version=15  # Debian 12's postgresql
postgres_official=docker.io/library/postgres
postgres_local=localhost/lesslabels-postgres

say() { echo "base-images: $*" >&2; }
have() { "$engine" image inspect "$1" >/dev/null 2>&1; }
# The official image, present or pulled now (quietly: its absence is the case this script handles).
official() {
  [ "$mode" != local ] || return 1
  have "$1" && return 0
  say "pulling $1"
  if "$engine" pull -q "$1" >/dev/null 2>/tmp/lesslabels-pull.$$; then rm -f /tmp/lesslabels-pull.$$; return 0; fi
  say "cannot pull $1: $(head -c 300 /tmp/lesslabels-pull.$$)"
  rm -f /tmp/lesslabels-pull.$$
  [ "$mode" != pull ] || { say "LESSLABELS_BASE=pull: not building a replacement"; exit 1; }
  return 1
}

debian_base() {
  have "$base" && return 0
  command -v debootstrap >/dev/null 2>&1 || { say "debootstrap is not installed (apt-get install debootstrap)"; exit 3; }
  [ "$(id -u)" = 0 ] || { say "debootstrap needs root"; exit 3; }
  local rootfs started=$SECONDS
  rootfs=$(mktemp -d /var/tmp/lesslabels-rootfs.XXXXXX)
  trap 'rm -rf "$rootfs"' EXIT
  say "debootstrap --variant=minbase $suite from $mirror"
  debootstrap --variant=minbase "$suite" "$rootfs" "$mirror" >&2 || { say "debootstrap failed (mirror $mirror)"; exit 3; }
  cat >"$rootfs/etc/apt/sources.list" <<SOURCES
deb $mirror $suite main
deb $mirror $suite-updates main
deb $security_mirror $suite-security main
SOURCES
  # As Debian's own images: no services started by package scripts, no recommends, no kept .debs.
  printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"
  chmod 755 "$rootfs/usr/sbin/policy-rc.d"
  printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' >"$rootfs/etc/apt/apt.conf.d/90lesslabels"
  printf 'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb || true"; };\n' >"$rootfs/etc/apt/apt.conf.d/91clean"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/tmp/*
  tar -C "$rootfs" -c . | "$engine" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["/bin/bash"]' - "$base" >/dev/null
  rm -rf "$rootfs"
  trap - EXIT
  say "$base made in $((SECONDS - started)) s"
}

build() {  # build IMAGE CONTAINERFILE
  local started
  have "$1" && return 0
  debian_base
  started=$SECONDS
  say "building $1"
  "$engine" build -q -t "$1" --build-arg "BASE_IMAGE=$base" -f "images/$2" images >/dev/null
  say "$1 built in $((SECONDS - started)) s"
}

if official "$python_official"; then
  echo "LESSLABELS_PYTHON_IMAGE=$python_official"
else
  build "$python_local" python.Containerfile
  echo "LESSLABELS_PYTHON_IMAGE=$python_local"
fi
if official "$postgres_official:$postgres_version"; then
  echo "LESSLABELS_POSTGRES_IMAGE=$postgres_official"
  echo "LESSLABELS_POSTGRES_VERSION=$postgres_version"
else
  build "$postgres_local:$postgres_local_version" postgres.Containerfile
  echo "LESSLABELS_POSTGRES_IMAGE=$postgres_local"
  echo "LESSLABELS_POSTGRES_VERSION=$postgres_local_version"
fi
