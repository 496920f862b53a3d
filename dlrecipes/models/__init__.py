"""Keras model builders: plain functions from settings to an uncompiled `keras.Model`."""

from dlrecipes.models import vision

__all__ = ["vision"]
