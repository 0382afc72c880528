"""Errors of the name matching helpers."""


class IdentityError(ValueError):
    """Base class for the errors of :mod:`patients.identity`."""


class UnknownCharsetError(IdentityError):
    """A fallback charset that Python does not know."""
