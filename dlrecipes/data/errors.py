"""Errors the data layer raises: each names what was wrong and what to do instead."""


class DatasetError(ValueError):
    """A dataset spec or a dataset's files cannot be used as asked."""
