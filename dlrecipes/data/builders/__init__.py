"""TFDS builders for the datasets that ship inside PyPI packages.

Importing this package registers them with TFDS, so `tfds.load("mnist_sample")` works offline.
"""

from dlrecipes.data.builders.mnist_sample import MnistSample

EMBEDDED = {"mnist_sample": MnistSample}

__all__ = ["EMBEDDED", "MnistSample"]
