"""Runtime shared by every service. Must not import torch."""
