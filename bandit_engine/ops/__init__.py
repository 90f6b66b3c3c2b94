"""Operational tools: load and soak runs (``python -m bandit_engine.ops.soak``)."""
