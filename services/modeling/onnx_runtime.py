"""A checkpoint's classifier on ONNX Runtime, in fp32 and int8: built once when the checkpoint is
published, checked on the run's labelled texts, and run by the scorer (``--runtime onnx``).

The folder, inside the checkpoint's own (written in its staging folder by the trainer, so it is
published atomically with the weights, or not at all)::

    onnx/model.onnx        the fp32 graph: encoder + pooling + head, dynamic batch and length, checked
                           against the torch model (``lesslabels.modeling.onnx_export``)
    onnx/model.int8.onnx   the same graph with int8 weights: ONNX Runtime's pre-processing (graph
                           optimisation; its symbolic shape inference is skipped, which BERT graphs
                           exported with dynamic axes do not complete), then dynamic quantization of
                           the MatMul weights per output channel (``QInt8``)
    onnx/tokenizer.json, labels.json   as ``lesslabels export-model`` writes them
    onnx/manifest.json     the export's manifest, the int8 check (``Int8Check``) and each graph's sha256

Served int8 is what the check measured: the int8 graph, and the fp32 graph again for the rows whose
int8 top probability is below ``refine_below`` (the bf16 path's rule, ``CacheConfig.refine_below``).
The check passes when that output's argmax agrees with the fp32 graph's on at least
``MIN_AGREEMENT`` of the texts and the 99th percentile of the entropy difference, in units of
log(classes) (1 = the most uncertain a text can be), is at most ``ENTROPY_TOLERANCE``; the margin's
is recorded beside it. A checkpoint whose int8 graph failed is served by the fp32 graph (the scorer
logs why and ``LoadedModel.runtime`` says so).

On a CUDA device (``onnxruntime-gpu``, whose ``CUDAExecutionProvider`` is then available), sessions
run on ONNX Runtime's CUDA provider with the CPU provider behind it (for any node the CUDA provider
has no kernel for), and the fp32 graph serves alone: int8 dynamic quantization is a CPU technique
(its dynamically quantized integer MatMuls are made for the CPU's integer instructions; Hugging Face
Optimum's GPU guide: "it is not possible to run quantized models on CUDAExecutionProvider", only
statically quantized ones on TensorRT's), and a node placed on the CPU provider costs copies between
the devices. The GPU's reduced precision is torch's bf16/fp16 autocast (``--runtime torch``, what
``auto`` picks on CUDA), with the same fp32 re-scoring of uncertain rows.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import logging
import pathlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from lesslabels.common import uncertainty
from lesslabels.common.checkpoints import sha256_file
from lesslabels.modeling import inference, onnx_export, pooling
from lesslabels.modeling.batching import TokenIds

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedTokenizerBase

log = logging.getLogger(__name__)

#: The folder inside a checkpoint's.
FOLDER = "onnx"
FP32_FILE = onnx_export.MODEL_FILE
INT8_FILE = "model.int8.onnx"
#: Labelled texts of the run the int8 graph is checked on (drawn at random when there are more).
CHECK_TEXTS = 1000
MIN_AGREEMENT = 0.995
ENTROPY_TOLERANCE = 0.05
#: The fp32 re-scoring threshold the check applies (the scorer's default ``--refine-below``).
REFINE_BELOW = 0.8
#: What the scorer's LoadedModel.runtime says.
TORCH, ONNX_FP32, ONNX_INT8 = "torch", "onnx-fp32", "onnx-int8"
CUDA_PROVIDER, CPU_PROVIDER = "CUDAExecutionProvider", "CPUExecutionProvider"
#: Why the int8 graph does not serve on CUDA (the scorer logs it; the module docstring says more).
INT8_NOT_ON_CUDA = "int8 dynamic quantization is a CPU technique: on CUDA the fp32 graph serves"


@dataclasses.dataclass(frozen=True)
class Int8Check:
    """The int8 graph (with fp32 re-scoring below ``refine_below``) against the fp32 graph."""

    texts: int
    agreement: float  # share of texts with the same argmax
    entropy_p99: float  # 99th percentile of |entropy difference| / log(classes)
    margin_p99: float  # 99th percentile of |margin difference|
    rescored: float  # share of texts re-scored in fp32
    refine_below: float

    @property
    def passed(self) -> bool:
        return self.agreement >= MIN_AGREEMENT and self.entropy_p99 <= ENTROPY_TOLERANCE

    def as_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "passed": self.passed}


def available() -> bool:
    """Whether onnxruntime (the ``onnx`` extra) is installed."""
    return importlib.util.find_spec("onnxruntime") is not None


def cuda_available() -> bool:
    """Whether the installed onnxruntime has the CUDA provider (``onnxruntime-gpu``)."""
    if not available():
        return False
    import onnxruntime

    return CUDA_PROVIDER in onnxruntime.get_available_providers()


def providers(device: str = "cpu") -> list[Any]:
    """ONNX Runtime's providers for a session on ``device`` ("cpu", "cuda", "cuda:N"), in order of
    preference: on CUDA the CUDA provider on that GPU, with the CPU provider for any node it lacks;
    ValueError for CUDA without the CUDA provider installed."""
    kind, _, index = device.partition(":")
    if kind != "cuda":
        return [CPU_PROVIDER]
    if not cuda_available():
        raise ValueError(f"device {device}: this onnxruntime has no {CUDA_PROVIDER} (pip install onnxruntime-gpu)")
    return [(CUDA_PROVIDER, {"device_id": int(index or 0)}), CPU_PROVIDER]


# -- building (the trainer, at publish time) ---------------------------------------------------


class _QuieterQuantizer(logging.Filter):
    """ONNX Runtime's quantizer logs a line per tensor on the root logger at INFO: below WARNING,
    those are dropped (records of other modules reach the root logger through their own loggers,
    which this filter does not see)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or "onnxruntime" not in record.pathname


_QUIETER = _QuieterQuantizer()


def build(
    loaded: inference.InferenceModel, checkpoint_folder: pathlib.Path, texts: Sequence[str], *, threads: int = 1
) -> dict[str, Any]:
    """Write ``checkpoint_folder/onnx`` for ``loaded`` (an fp32 classifier on the CPU): the fp32
    graph, the int8 graph, and a manifest with the int8 check on ``texts`` (the run's labelled texts;
    at most ``CHECK_TEXTS`` of them, drawn with a fixed seed). Returns the manifest."""
    from onnxruntime.quantization import QuantType, quant_pre_process, quantize_dynamic

    logging.getLogger().addFilter(_QUIETER)  # once: a filter is kept only once
    folder = checkpoint_folder / FOLDER
    manifest = onnx_export.export_onnx(loaded, folder, {})
    optimised = folder / "model.pre.onnx"
    quant_pre_process(str(folder / FP32_FILE), str(optimised), skip_symbolic_shape=True)
    quantize_dynamic(
        str(optimised),
        str(folder / INT8_FILE),
        weight_type=QuantType.QInt8,
        per_channel=True,
        op_types_to_quantize=["MatMul"],
    )
    optimised.unlink()
    if len(texts) > CHECK_TEXTS:
        picked = np.random.default_rng(0).choice(len(texts), CHECK_TEXTS, replace=False)
        texts = [texts[i] for i in sorted(picked)]
    check = check_int8(session(folder / FP32_FILE, threads), session(folder / INT8_FILE, threads), loaded, texts)
    manifest["int8"] = check.as_dict()
    manifest["sha256"] = {name: sha256_file(folder / name) for name in (FP32_FILE, INT8_FILE)}
    (folder / onnx_export.MANIFEST_FILE).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", "utf-8")
    log.info(
        "event=onnx_built model=%s int8_passed=%s agreement=%.4f entropy_p99=%.4f margin_p99=%.4f texts=%d",
        loaded.name,
        check.passed,
        check.agreement,
        check.entropy_p99,
        check.margin_p99,
        check.texts,
    )
    return manifest


def check_int8(fp32: Any, int8: Any, loaded: inference.InferenceModel, texts: Sequence[str]) -> Int8Check:
    """Score ``texts`` (the scorer's tokenisation) with both sessions; see ``Int8Check``."""
    rows = inference.tokenize(loaded, texts).input_ids
    reference = _probabilities(fp32, rows, loaded.pad_token_id)  # [n, c]
    served = _probabilities(int8, rows, loaded.pad_token_id)  # [n, c]
    unsure = served.max(axis=1) < REFINE_BELOW  # [n]
    served[unsure] = reference[unsure]
    n, classes = reference.shape
    if n == 0:
        return Int8Check(0, 1.0, 0.0, 0.0, 0.0, REFINE_BELOW)
    entropy = np.abs(uncertainty.entropy(served) - uncertainty.entropy(reference)) / np.log(max(classes, 2))
    margin = np.abs(uncertainty.margin(served) - uncertainty.margin(reference))
    return Int8Check(
        texts=n,
        agreement=float((served.argmax(1) == reference.argmax(1)).mean()),
        entropy_p99=float(np.quantile(entropy, 0.99)),
        margin_p99=float(np.quantile(margin, 0.99)),
        rescored=float(unsure.mean()),
        refine_below=REFINE_BELOW,
    )


def _probabilities(graph: Any, rows: Sequence[TokenIds], pad_id: int, batch: int = 64) -> np.ndarray:
    """Probabilities of ``rows`` from one session, ``batch`` rows at a time (sorted by length)."""
    order = np.argsort([len(r) for r in rows], kind="stable")
    out = np.zeros((len(rows), 0), np.float32)
    for start in range(0, len(rows), batch):
        picked = order[start : start + batch]
        probabilities, _ = run(graph, [rows[i] for i in picked], pad_id, embeddings=False)
        if out.shape[1] == 0:
            out = np.zeros((len(rows), probabilities.shape[1]), np.float32)
        out[picked] = probabilities
    return out


# -- serving (the scorer) --------------------------------------------------------------------


def session(path: pathlib.Path, threads: int = 1, device: str = "cpu") -> Any:
    """An onnxruntime session on ``path`` (``providers(device)``), ``threads`` CPU threads per run;
    runs may overlap. ValueError when CUDA was asked for and the session did not get it."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = max(1, threads)
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # notes about initialisers are not the user's to act on
    graph = onnxruntime.InferenceSession(str(path), options, providers=providers(device))
    # A CUDA provider that cannot start (no CUDA or cuDNN libraries of its version) is dropped with
    # a log line and the session runs on the CPU: not what a scorer on CUDA was asked to do.
    if device.startswith("cuda") and CUDA_PROVIDER not in graph.get_providers():
        raise ValueError(
            f"{path}: ONNX Runtime's {CUDA_PROVIDER} did not start (see its log); providers {graph.get_providers()}"
        )
    return graph


def run(graph: Any, rows: Sequence[TokenIds], pad_id: int, *, embeddings: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """(probabilities [n, c], embeddings [n, h] or None) of token id rows, padded to the longest."""
    longest = max(len(r) for r in rows)
    ids = np.full((len(rows), longest), pad_id, np.int64)  # [n, t]
    mask = np.zeros((len(rows), longest), np.int64)  # [n, t]
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    feed = {"input_ids": ids, "attention_mask": mask}
    names = {i.name for i in graph.get_inputs()}
    if "token_type_ids" in names:
        feed["token_type_ids"] = np.zeros_like(ids)
    outputs = ["probabilities", "embedding"] if embeddings else ["probabilities"]
    result = graph.run(outputs, feed)
    return result[0], (result[1] if embeddings else None)


@dataclasses.dataclass
class OnnxModel:
    """A classifier served by ONNX Runtime: what the scorer's cache reads of a loaded model
    (``inference.InferenceModel``'s fields), with the fp32 graph and, when it serves, the int8 one."""

    name: str
    tokenizer: PreTrainedTokenizerBase
    max_length: int
    labels: list[str]
    fp32: Any
    int8: Any | None
    source: str = ""
    device: str = "cpu"
    dtype: None = None  # no autocast: the reduced precision is the int8 graph's
    why_fp32: str = ""  # why the int8 graph does not serve, when it does not

    @property
    def is_classifier(self) -> bool:
        return True

    @property
    def runtime(self) -> str:
        return ONNX_INT8 if self.int8 is not None else ONNX_FP32

    @property
    def pad_token_id(self) -> int:
        pad = getattr(self.tokenizer, "pad_token_id", None)
        return int(pad) if pad is not None else 0


def has_export(checkpoint_folder: pathlib.Path) -> bool:
    return (checkpoint_folder / FOLDER / onnx_export.MANIFEST_FILE).is_file()


def why_not_int8(manifest: dict[str, Any], refine_below: float, device: str = "cpu") -> str:
    """Why an export's int8 graph must not serve a scorer on ``device`` that re-scores below
    ``refine_below`` ("" when it may)."""
    if device.startswith("cuda"):
        return INT8_NOT_ON_CUDA
    check = manifest.get("int8") or {}
    if not check:
        return "the export has no int8 graph"
    if not check.get("passed"):
        return (
            f"the int8 graph failed its check: argmax agreement {check['agreement']:.4f} (at least "
            f"{MIN_AGREEMENT}), entropy difference p99 {check['entropy_p99']:.4f} (at most {ENTROPY_TOLERANCE})"
        )
    if refine_below < float(check.get("refine_below", REFINE_BELOW)):
        return (
            f"the int8 graph was checked with fp32 re-scoring below {check['refine_below']}, and this "
            f"scorer re-scores below {refine_below}"
        )
    return ""


def runtime_of_export(checkpoint_folder: pathlib.Path, refine_below: float, device: str = "cpu") -> str:
    """ONNX_INT8 or ONNX_FP32: what would serve the checkpoint's export on ``device`` (its manifest
    read only)."""
    try:
        manifest = json.loads((checkpoint_folder / FOLDER / onnx_export.MANIFEST_FILE).read_text("utf-8"))
    except (OSError, ValueError):
        return TORCH  # loading it would fail the same way, and torch would serve
    return ONNX_FP32 if why_not_int8(manifest, refine_below, device) else ONNX_INT8


def load(
    checkpoint_folder: pathlib.Path,
    *,
    labels: Sequence[str],
    name: str,
    max_length: int,
    threads: int = 1,
    refine_below: float = REFINE_BELOW,
    device: str = "cpu",
) -> OnnxModel:
    """The checkpoint's ONNX graphs, checked against the sha256 its manifest records (ValueError
    otherwise), in sessions on ``device`` (``providers``). The int8 graph serves when its check passed
    at a ``refine_below`` no higher than the scorer's, on a CPU; otherwise the fp32 graph serves
    alone, and ``why_fp32`` says why."""
    from transformers import AutoConfig, AutoTokenizer

    pooling.register()  # a mean-pooled checkpoint's config type, from our code, never the folder's
    folder = checkpoint_folder / FOLDER
    manifest = json.loads((folder / onnx_export.MANIFEST_FILE).read_text("utf-8"))
    for file, digest in (manifest.get("sha256") or {}).items():
        if sha256_file(folder / file) != digest:
            raise ValueError(f"{folder / file}: its sha256 differs from the one its manifest records")
    exported = json.loads((folder / onnx_export.LABELS_FILE).read_text("utf-8"))
    if list(labels) and list(labels) != exported:
        raise ValueError(f"{folder}: the ONNX graph's labels differ from the checkpoint's")
    tokenizer = AutoTokenizer.from_pretrained(checkpoint_folder, local_files_only=True, trust_remote_code=False)
    config = AutoConfig.from_pretrained(checkpoint_folder, local_files_only=True, trust_remote_code=False)
    limit = inference.model_max_length(tokenizer, config)  # the graph's axes are dynamic up to the model's positions
    why = why_not_int8(manifest, refine_below, device)
    return OnnxModel(
        name=name,
        tokenizer=tokenizer,
        max_length=min(max_length, limit) if max_length else limit,
        labels=exported,
        fp32=session(folder / FP32_FILE, threads, device),
        int8=None if why else session(folder / INT8_FILE, threads, device),
        source=str(checkpoint_folder),
        device=device,
        why_fp32=why,
    )


def forward(
    model: OnnxModel, rows: Sequence[TokenIds], *, embeddings: bool = False, full_precision: bool = False
) -> inference.ForwardOutput:
    """``inference.forward`` on ONNX Runtime: the int8 graph unless ``full_precision`` or none serves."""
    if not rows:
        return inference.ForwardOutput(
            np.zeros((0, len(model.labels)), np.float32), np.zeros((0, 0), np.float32) if embeddings else None
        )
    graph = model.fp32 if full_precision or model.int8 is None else model.int8
    probabilities, embedded = run(graph, rows, model.pad_token_id, embeddings=embeddings)
    return inference.ForwardOutput(probabilities.astype(np.float32, copy=False), embedded)
