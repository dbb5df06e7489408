"""Benchmarks against the peers (transformers, open_clip), measured side by side: `python -m bench`."""
