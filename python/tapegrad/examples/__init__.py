"""Runnable examples: ``python -m tapegrad.examples.mnist``."""
