"""lesslabels: active learning for text classification as gRPC microservices.

Layout. The folder services/ installs as the package ``lesslabels`` (pyproject.toml: ``package-dir``)
and every folder under it with an ``__init__.py`` as ``lesslabels.<folder>``: setup.py finds them, so a
new one needs no edit anywhere. Code imports ``lesslabels.*``, never ``services.*``. The contracts are
protos/lesslabels/<package>/*.proto; each ships beside the stubs generated from it (``make proto``),
so protos/lesslabels/v1/pool.proto installs as lesslabels/v1/pool.proto.

Packages and which other packages of lesslabels each may import (tests/project/test_foundation.py
draws this graph from the code and fails on any other edge):
- ``common``: server runtime, errors, configuration (default addresses too), channels, checkpoint
  store, uncertainty math. Imports no other package. No torch.
- ``contract``: the typed values every service shares (runs, samples, shards, metrics, scores) and,
  in ``contract.wire`` alone, their protobuf codecs. Imports ``common``; ``contract.wire`` also
  ``v1``, so ``lesslabels.contract`` itself loads no protobuf. No torch.
- ``v1``, ``inference``: generated stubs of protos/lesslabels/v1 and of the Open Inference
  Protocol (protos/lesslabels/inference). Not edited by hand.
- ``client``: the Python client, one class per service on ``client.base.ServiceClient``, the base
  for a client of any lesslabels service. Imports ``common``, ``contract``, ``v1``. No torch.
- ``pool``: SQLAlchemy store of datasets, samples, labels, runs. Imports ``common``, ``contract``,
  ``v1``; ``client`` in ``pool.run_store_client`` only (the run store's client, on ``ServiceClient``).
  No torch.
- ``modeling``: torch/transformers model code shared by trainer and scorer. Imports ``common``,
  ``contract``.
- ``trainer``: fine-tunes a model (torch). Imports ``common``, ``contract``, ``v1``, ``client``,
  ``modeling``; ``pool`` in ``trainer.label_source`` only (its adapter over the run store's client).
- ``scorer``: scores texts with a model (torch). Imports ``common``, ``contract``, ``v1``,
  ``inference``, ``client``, ``modeling``.
- ``coordinator``: acquisition rounds over RPC. Imports ``common``, ``contract``, ``v1``,
  ``client``; ``pool`` in ``coordinator.main`` only (the core sees the run store as
  ``coordinator.ports.RunStorePort``). No torch.
- ``demo``: the demo data. Imports ``common``.
- ``cli``: the ``lesslabels`` command. Imports ``common``, ``contract``, ``client``, ``demo``: every
  call goes through the SDK, no stubs.
- ``web``: the labelling app in the browser. Imports ``common``, ``contract``, ``client``. No torch.
- ``__main__`` (``python -m lesslabels``): imports ``cli``.

Editable installs (``make setup``) are setuptools' strict mode: build/__editable__.*/lesslabels/ holds
links to these files and is on sys.path, so mypy and editors read ``lesslabels`` from files. Loaded
from there, this package imports its modules from services/ itself, so a module added since the
install is importable at once (``make lint`` redoes the links for mypy).
"""

import os as _os

if _os.path.islink(__file__):  # an editable install's link to services/__init__.py
    _source = _os.path.dirname(_os.path.realpath(__file__))
    if _source not in __path__:
        __path__.insert(0, _source)
