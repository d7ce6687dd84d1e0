"""The trainer service: fine-tuning jobs on the labelled pool, publishing checkpoints (uses torch)."""
