"""Model code shared by the trainer and the scorer (torch, transformers). Never imported by pool or coordinator."""
