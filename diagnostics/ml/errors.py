"""Errors of the ML core, each with a message a user or an operator can act on."""


class MLError(Exception):
    """Base class for errors raised by :mod:`diagnostics.ml`."""


class ImageReadError(MLError):
    """The file is no image the models can read."""


class CardError(MLError):
    """A model card is missing, malformed or does not match its weights."""


class WeightsError(MLError):
    """The weights file is missing, altered (sha256 mismatch) or of the wrong shape."""


class DataError(MLError):
    """A training or evaluation data set cannot be used as given."""
