"""Convolution layers (being written)."""

__all__ = []
