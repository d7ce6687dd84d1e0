"""``lesslabels trainer``: run the trainer service.

    lesslabels trainer --port 50052 --pool-address pool:50051 --checkpoint-dir /checkpoints

Every flag also reads ``LESSLABELS_<FLAG>`` (LESSLABELS_POOL_ADDRESS, LESSLABELS_CHECKPOINT_DIR,
LESSLABELS_JOBS_DIR, LESSLABELS_KEEP_CHECKPOINTS, LESSLABELS_DEVICE, LESSLABELS_NUM_THREADS ...).
Health stays NOT_SERVING until the pool answers SERVING; only then does the job worker start.
SIGTERM cancels the running job (recorded INTERRUPTED), then stops the server.
"""

from __future__ import annotations

import argparse
import logging
import os
import pathlib
import threading

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
from lesslabels.contract.vocabulary import ONNX_EXPORTS
from lesslabels.modeling import models, onnx_runtime
from lesslabels.trainer.core import Trainer
from lesslabels.trainer.jobs import JobManager
from lesslabels.trainer.label_source import PoolLabelSource
from lesslabels.trainer.servicer import TrainerServicer, registration

log = logging.getLogger(__name__)

DEFAULT_PORT = 50052
DEFAULT_CHECKPOINT_DIR = ".lesslabels/checkpoints"
JOBS_SUBDIR = ".jobs"


class TrainerServer(Server):
    """A Server whose job worker starts with ``set_serving`` and whose ``stop`` cancels the running job."""

    def __init__(self, settings: ServerSettings, trainer: Trainer, jobs: JobManager, store: CheckpointStore):
        super().__init__(settings, [registration(TrainerServicer(trainer, jobs, store))], name="trainer")
        self.trainer = trainer
        self.jobs = jobs
        self.store = store
        self._jobs_started = False
        self.on_stop(trainer.pool.close)

    def set_serving(self) -> None:
        if not self._jobs_started:
            self._jobs_started = True
            self.jobs.start()
        super().set_serving()

    def stop(self, grace: float | None = None) -> None:
        self.set_not_serving()
        # Cancel first: watchers then see the job end instead of being cut off by the grace period.
        self.jobs.stop()
        super().stop(grace)


def build_server(
    settings: ServerSettings,
    pool_address: str,
    checkpoint_dir: str | os.PathLike,
    *,
    jobs_dir: str | os.PathLike | None = None,
    keep_checkpoints: int = 3,
    device: str = "",
    num_threads: int = 0,
    progress_every_s: float = 2.0,
    model_dirs: tuple[str, ...] = (),
    onnx_export: bool = False,
) -> TrainerServer:
    """A trainer server (not started). ``start()`` then ``set_serving()`` (which starts the job worker).

    Jobs are persisted under ``jobs_dir`` [CHECKPOINT_DIR/.jobs]; the pool is called with
    ``settings.outbound_token`` (the internal token, else the public one) and ``settings.client_tls``;
    ``progress_every_s`` spaces the loop's progress events (0 = one per step, for tests); a job's
    base_model must be the bundled model or a folder inside ``model_dirs``.
    """
    store = CheckpointStore(checkpoint_dir)
    store.clean_staging()
    pool = PoolLabelSource(pool_address, token=settings.outbound_token, tls=settings.client_tls)
    trainer = Trainer(
        pool,
        store,
        device=device,
        keep_checkpoints=keep_checkpoints,
        default_threads=num_threads,
        progress_every_s=progress_every_s,
        model_dirs=model_dirs,
        onnx=onnx_export,
    )
    jobs = JobManager(jobs_dir or pathlib.Path(checkpoint_dir) / JOBS_SUBDIR, trainer.run, device=str(trainer.device))
    return TrainerServer(settings, trainer, jobs, store)


def _wait_for_pool_then_serve(
    server: TrainerServer, pool_address: str, token: str, stopped: threading.Event, tls: ClientTLS | None = None
) -> None:
    while not stopped.is_set():
        try:
            wait_until_serving(pool_address, token=token, tls=tls, timeout=30)
        except errors.Unavailable as exc:
            log.warning("event=pool_unavailable address=%s error=%r", pool_address, str(exc))
            continue
        if not stopped.is_set():
            server.set_serving()
        return


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lesslabels trainer", description="Run the trainer service.")
    add_server_flags(parser, DEFAULT_PORT)
    add_flag(parser, "--pool-address", default="127.0.0.1:50051", help="HOST:PORT of the pool service")
    add_flag(parser, "--checkpoint-dir", default=DEFAULT_CHECKPOINT_DIR, help="checkpoint store (a shared volume)")
    add_flag(parser, "--jobs-dir", default="", help="where job files are kept ('' = CHECKPOINT_DIR/.jobs)")
    add_flag(
        parser,
        "--keep-checkpoints",
        default=3,
        type=int,
        help="per run, keep the last N checkpoints plus the best and the latest (0 = keep all)",
    )
    add_flag(parser, "--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:N")
    add_flag(
        parser,
        "--num-threads",
        default=0,
        type=int,
        help="torch CPU threads for jobs that set none (0 = the usable CPUs not busy with other work, re-read as it trains)",
    )
    add_flag(
        parser,
        "--onnx-export",
        default="auto",
        choices=ONNX_EXPORTS,
        help="publish each checkpoint with its ONNX graphs, fp32 and int8, which the scorer's --runtime onnx "
        "serves (auto = when onnxruntime is installed)",
    )
    add_model_dir_flag(parser)
    args = parser.parse_args(argv)
    settings = server_settings(args)
    if args.onnx_export == "on" and not onnx_runtime.available():
        parser.error("--onnx-export on needs onnxruntime: pip install 'lesslabels[onnx]'")
    setup_logging(settings.log_level, "trainer")
    tracing.configure("trainer")  # OTEL_* variables; off when none is set
    if args.keep_checkpoints < 0:
        parser.error(f"--keep-checkpoints {args.keep_checkpoints}: must not be negative")
    if args.num_threads < 0:
        parser.error(f"--num-threads {args.num_threads}: must not be negative")
    models.import_transformers()  # before any RPC or job thread can (not thread-safe the first time)
    try:  # the default base model loads, or the service does not start (no SERVING that fails later)
        models.check_loadable("default")
    except (errors.InvalidArgument, ModuleNotFoundError) as exc:
        parser.error(f"the bundled base model cannot be loaded: {exc}")
    try:
        server = build_server(
            settings,
            args.pool_address,
            args.checkpoint_dir,
            jobs_dir=args.jobs_dir or None,
            keep_checkpoints=args.keep_checkpoints,
            device=args.device,
            num_threads=args.num_threads,
            model_dirs=model_dirs(args),
            onnx_export=args.onnx_export == "on" or (args.onnx_export == "auto" and onnx_runtime.available()),
        )
    except errors.InvalidArgument as exc:
        parser.error(str(exc))
    server.start()
    stopped = threading.Event()
    server.on_stop(stopped.set)
    threading.Thread(
        target=_wait_for_pool_then_serve,
        args=(server, args.pool_address, settings.outbound_token, stopped, settings.client_tls),
        name="trainer-wait-pool",
        daemon=True,
    ).start()
    server.serve_forever()
    return 0
