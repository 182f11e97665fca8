"""cnnlab: convolutional neural networks from scratch, in NumPy.

The reference edition of this package holds the full solutions; the student
edition is generated from it by ``python -m autograder student-edition``.
Submodules are imported on first use, so ``import cnnlab`` stays cheap.
"""

import importlib

__version__ = "0.1.0"

__all__ = ["checks", "data", "gradcheck", "layers", "lenet", "modern_cnn", "optim", "pooling",
           "signal", "train"]


def __getattr__(name):
    if name in __all__:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'cnnlab' has no attribute {name!r}")
