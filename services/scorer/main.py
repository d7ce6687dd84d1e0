"""``lesslabels scorer``: run the scorer service (ScorerService + the Open Inference Protocol, one port)."""

from __future__ import annotations

import argparse
import logging
import os

from grpc_health.v1 import health_pb2

from lesslabels.client import PoolClient
from lesslabels.common import errors, tracing
from lesslabels.common.channels import wait_until_serving
from lesslabels.common.checkpoints import CheckpointStore
from lesslabels.common.config import (
    ClientTLS,
    ServerSettings,
    add_flag,
    add_model_dir_flag,
    model_dirs,
    add_server_flags,
    server_settings,
)
from lesslabels.common.logs import setup_logging
from lesslabels.common.server import Server
from lesslabels.modeling import models
from lesslabels.scorer.embedding_store import EmbeddingStore
from lesslabels.scorer.head_scoring import FastHeads
from lesslabels.contract.vocabulary import RUNTIMES
from lesslabels.scorer.model_cache import CacheConfig, ModelCache, ModelSpec, parallelism, pick_runtime
from lesslabels.scorer.oip.model_names import spec_from_model_name
from lesslabels.scorer.oip.servicer import InferenceServicer
from lesslabels.scorer.oip.servicer import registration as oip_registration
from lesslabels.scorer.limits import DEFAULT_MAX_INFLIGHT_MB, DEFAULT_MAX_TEXTS, MiB, InFlightBudget
from lesslabels.scorer.malloc import return_freed_memory
from lesslabels.scorer.pool_source import PoolLabels
from lesslabels.scorer.servicer import ScorerServicer, registration

log = logging.getLogger(__name__)

DEFAULT_PORT = 50053
DEFAULT_CHECKPOINT_DIR = ".lesslabels/checkpoints"
DEFAULT_EMBEDDING_DIR = ".lesslabels/embeddings"


class ScorerServer(Server):
    """The scorer's server, with its model cache and request budget for in-process use."""

    model_cache: ModelCache
    fast_heads: FastHeads | None
    in_flight: InFlightBudget


def build_server(
    settings: ServerSettings,
    checkpoint_dir: str,
    pool_address: str = "",
    *,
    cache_config: CacheConfig | None = None,
    max_texts: int = DEFAULT_MAX_TEXTS,
    max_inflight_bytes: int = DEFAULT_MAX_INFLIGHT_MB * MiB,
    pool_token: str = "",
    pool_tls: ClientTLS | None = None,
    pool_stream_timeout: float = 3600.0,
    embedding_dir: str = "",
) -> ScorerServer:
    """A scorer server (not started). ``start()`` it, then ``set_serving()``; ``stop()`` closes the
    models and the pool channel. ``server.model_cache`` is the model cache, for in-process use."""
    cache = ModelCache(CheckpointStore(checkpoint_dir), cache_config or CacheConfig())
    pool = PoolClient(pool_address, token=pool_token, tls=pool_tls) if pool_address else None
    # The fast head (ModelRef.fast_head) reads a run's labels from the pool and keeps base-encoder
    # embeddings in embedding_dir ("": an "embeddings" folder beside the checkpoint folder).
    heads = None
    if pool is not None:
        folder = embedding_dir or os.path.join(os.path.dirname(os.path.abspath(checkpoint_dir)), "embeddings")
        heads = FastHeads(cache, EmbeddingStore(folder), PoolLabels(pool))
    in_flight = InFlightBudget(max_inflight_bytes)  # one budget for both protocols
    scorer = ScorerServicer(
        cache, pool=pool, max_texts=max_texts, pool_stream_timeout=pool_stream_timeout, in_flight=in_flight
    )
    holder: list[Server] = []
    # OIP ServerReady mirrors the health status (NOT_SERVING until set_serving).
    inference = InferenceServicer(cache, max_texts=max_texts, ready=lambda: _is_serving(holder[0]), in_flight=in_flight)
    server = ScorerServer(settings, [registration(scorer), oip_registration(inference)], name="scorer")
    holder.append(server)
    server.model_cache = cache
    server.fast_heads = scorer.heads = heads
    server.in_flight = in_flight
    server.on_stop(cache.close)
    if pool is not None:
        server.on_stop(pool.close)
    return server


def _is_serving(server: Server) -> bool:
    reply = server.health.Check(health_pb2.HealthCheckRequest(service=""), None)  # type: ignore[arg-type]  # Check never reads its context
    return reply.status == health_pb2.HealthCheckResponse.SERVING


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lesslabels scorer", description="Run the scorer service.")
    add_server_flags(parser, DEFAULT_PORT)
    add_flag(
        parser, "--checkpoint-dir", default=DEFAULT_CHECKPOINT_DIR, help="the checkpoint store the trainer publishes to"
    )
    add_flag(parser, "--pool-address", default="", help="pool service HOST:PORT, needed by ScorePool")
    add_flag(
        parser,
        "--embedding-dir",
        default=DEFAULT_EMBEDDING_DIR,
        help="where the fast head's base-encoder embeddings are kept (writable; reused after a restart)",
    )
    add_flag(parser, "--cache-size", default=3, type=int, help="models kept loaded (least recently used evicted)")
    add_flag(parser, "--device", default="", help="cpu, cuda, cuda:N ('' = CUDA when present)")
    add_flag(
        parser,
        "--precision",
        default="auto",
        help="auto (bf16 on CUDA and on CPUs with native bf16, else fp32), fp32, bf16, fp16",
    )
    add_flag(
        parser,
        "--runtime",
        default="auto",
        choices=RUNTIMES,
        help="engine for checkpoints: onnx (the ONNX graphs the trainer publishes with each checkpoint, int8 "
        "where its check passed; torch for checkpoints without them and for base models), torch, or auto "
        "(onnx on a CPU with onnxruntime installed, else torch)",
    )
    add_flag(
        parser,
        "--refine-below",
        default=0.8,
        type=float,
        help="with bf16/fp16 or int8, re-score in fp32 the rows whose top probability is below this (0 = off)",
    )
    add_flag(parser, "--max-length", default=0, type=int, help="tokens per text (0 = the checkpoint's training length)")
    add_flag(parser, "--max-batch-size", default=256, type=int, help="rows per forward pass")
    add_flag(parser, "--max-tokens", default=8192, type=int, help="padded tokens per forward pass")
    add_flag(parser, "--max-wait-ms", default=5.0, type=float, help="how long a batch waits for more requests")
    add_flag(parser, "--max-texts", default=DEFAULT_MAX_TEXTS, type=int, help="texts per Score/ModelInfer request")
    add_flag(
        parser,
        "--max-inflight-mb",
        default=DEFAULT_MAX_INFLIGHT_MB,
        type=int,
        help="MiB of texts (UTF-8) of Score/ModelInfer requests scored at once; past it a request is "
        "refused with RESOURCE_EXHAUSTED (one request alone always runs)",
    )
    add_flag(parser, "--threads", default=0, type=int, help="CPU threads for scoring (0 = all cores)")
    add_flag(
        parser,
        "--batch-workers",
        default=0,
        type=int,
        help="batches scored side by side (0 = auto: one per CPU thread, each forward single-threaded; 1 on CUDA)",
    )
    add_flag(parser, "--preload", default="", help="comma-separated checkpoint ids (or run-<id>) to load at start")
    add_model_dir_flag(parser)
    args = parser.parse_args(argv)
    settings = server_settings(args)
    for flag in ("cache_size", "max_batch_size", "max_tokens", "max_texts", "max_inflight_mb"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be at least 1")
    if not args.refine_below >= 0:  # also refuses NaN
        parser.error(f"--refine-below {args.refine_below} must be at least 0 (0 = no fp32 re-scoring)")
    setup_logging(settings.log_level, "scorer")
    tracing.configure("scorer")  # OTEL_* variables; off when none is set
    if args.threads < 0 or args.batch_workers < 0:
        parser.error("--threads and --batch-workers must not be negative (0 = automatic)")
    workers, torch_threads = parallelism(args.device, args.threads, args.batch_workers)
    try:
        runtime = pick_runtime(args.runtime, args.device)
    except ValueError as exc:
        parser.error(f"--runtime {args.runtime}: {exc}")
    import torch

    torch.set_num_threads(torch_threads)
    return_freed_memory()
    models.import_transformers()  # before any RPC thread can (not thread-safe the first time)
    try:  # the default base model loads, or the service does not start (no SERVING that fails later)
        models.check_loadable("default")
    except (errors.InvalidArgument, ModuleNotFoundError) as exc:
        parser.error(f"the bundled base model cannot be loaded: {exc}")
    config = CacheConfig(
        cache_size=args.cache_size,
        device=args.device,
        precision=args.precision,
        max_length=args.max_length,
        max_batch_size=args.max_batch_size,
        max_tokens=args.max_tokens,
        max_wait_ms=args.max_wait_ms,
        refine_below=args.refine_below,
        batch_workers=workers,
        model_dirs=model_dirs(args),
        runtime=runtime,
        onnx_threads=torch_threads,
    )
    server = build_server(
        settings,
        args.checkpoint_dir,
        args.pool_address,
        cache_config=config,
        max_texts=args.max_texts,
        max_inflight_bytes=args.max_inflight_mb * MiB,
        pool_token=settings.outbound_token,
        pool_tls=settings.client_tls,
        embedding_dir=args.embedding_dir,
    )
    server.start()
    if args.pool_address:
        # Health stays NOT_SERVING until the pool answers: the scorer waits, it does not crash.
        wait_until_serving(args.pool_address, timeout=600.0, token=settings.outbound_token, tls=settings.client_tls)
    for name in filter(None, (n.strip() for n in args.preload.split(","))):
        server.model_cache.load(spec_from_model_name(name))
    server.set_serving()
    server.serve_forever()
    return 0


__all__ = ["build_server", "main", "ModelSpec"]
