"""Keras model builders: plain functions from settings to an uncompiled `keras.Model`."""

from dlrecipes.models import text, vision

__all__ = ["text", "vision"]
