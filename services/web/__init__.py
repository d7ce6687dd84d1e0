"""The web labelling app: FastAPI pages over the client SDK (``lesslabels web``). No torch here."""
