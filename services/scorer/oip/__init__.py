"""The Open Inference Protocol (KServe / Triton v2 ``inference.GRPCInferenceService``) on the scorer.

Model name = a checkpoint id, or ``run-<id>`` for a run. Version (``model_version``): for a
checkpoint id, "" or the id; for ``run-<id>``, "" or ``latest`` (the run's latest checkpoint),
``best`` (its best by the validation accuracy in the manifests; a tie goes to the later round) or
one of the run's checkpoint ids; anything else is NOT_FOUND. ModelReady, ModelMetadata and
ModelConfig answer from the checkpoint manifests and never load or evict a model.

One BYTES input named ``text`` (the texts, shape ``[n]`` or ``[n, 1]``), typed
(``contents.bytes_contents``) or raw (``raw_input_contents``: each element a 4-byte little-endian
length then its bytes). Outputs are returned in ``raw_output_contents`` (little-endian, row-major):

    probabilities     FP32 [n, n_classes]   (class order in the response parameter "labels", JSON)
    entropy           FP32 [n]
    margin            FP32 [n]
    least_confidence  FP32 [n]
    ratio             FP32 [n]
    predicted_label   BYTES [n]
    truncated         BOOL [n]

Requesting ``probabilities`` with the output parameter ``classification: k`` (Triton's) returns
instead BYTES [n, k] strings ``"score:index:label"``, highest first. Unknown request, input or
output parameters, an input not named ``text`` and an output requested twice are INVALID_ARGUMENT.

Modules: ``model_names`` (a model name and version -> the checkpoint), ``codec`` (requests and
tensors -> texts, scores -> responses, configs and statistics -> protobuf) and ``servicer`` (the
thin handlers).
"""
