"""Coverage metrics, equity indicators and operations metrics."""
