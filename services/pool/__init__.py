"""The pool service: SQLAlchemy store of datasets, samples, labels, runs, rounds, acquisitions. No torch."""
