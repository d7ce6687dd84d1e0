"""lesslabels: active learning for text classification as gRPC microservices.

Layout (what each package may import):
- ``common``: server runtime, errors, configuration, channels, checkpoint store, uncertainty
  math. No torch.
- ``proto``: generated stubs (``make proto``).
- ``pool``: SQLAlchemy store of datasets, samples, labels, runs. No torch.
- ``modeling``: torch/transformers model code shared by trainer and scorer.
- ``trainer`` / ``scorer``: the services that own a model (torch).
- ``coordinator``: acquisition rounds over RPC. No torch.
- ``cli``: the ``lesslabels`` command.
"""
