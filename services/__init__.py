"""lesslabels: active learning for text classification as gRPC microservices.

Layout. The folder services/ installs as the package ``lesslabels`` (pyproject.toml: ``package-dir``)
and every folder under it with an ``__init__.py`` as ``lesslabels.<folder>``: setup.py finds them, so a
new one needs no edit anywhere. Code imports ``lesslabels.*``, never ``services.*``. The contracts are
protos/lesslabels/<package>/*.proto; each ships beside the stubs generated from it (``make proto``),
so protos/lesslabels/v1/pool.proto installs as lesslabels/v1/pool.proto.

Packages (what each may import):
- ``common``: server runtime, errors, configuration, channels, checkpoint store, uncertainty
  math. No torch.
- ``contract``: the typed values every service shares and their protobuf codecs. No torch.
- ``v1``, ``inference``: generated stubs of protos/lesslabels/v1 and of the Open Inference
  Protocol (protos/lesslabels/inference). Not edited by hand.
- ``pool``: SQLAlchemy store of datasets, samples, labels, runs. No torch.
- ``modeling``: torch/transformers model code shared by trainer and scorer.
- ``trainer`` / ``scorer``: the services that own a model (torch).
- ``coordinator``: acquisition rounds over RPC. No torch.
- ``client``: the Python client, one class per service. No torch.
- ``cli``: the ``lesslabels`` command; ``demo``: its demo data.
- ``web``: the labelling app in the browser. No torch.

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
