"""Utilities every stage may use: atomic file output, sharding, hashing, per-item seeds, PyTorch global state.

Imports nothing of scpdiff but :mod:`scpdiff.errors`.
"""
