"""Tasks: what the loops must not know (data, head, loss, metrics, predictions)."""
