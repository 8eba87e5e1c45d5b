"""Training: plain step functions, the trainer that sequences them, checkpoints, distribution, EMA."""
