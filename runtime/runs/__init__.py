"""Run directories and what they hold: atomic checkpoints, metrics, scalars, fault injection."""
