"""Dense layers, activations and the loss (being written)."""

__all__ = []
