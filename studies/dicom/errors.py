"""Errors of the DICOM package, each with a message a user can act on."""


class DicomError(Exception):
    """Base class for everything this package raises on bad input."""


class DicomValueError(DicomError, ValueError):
    """A DICOM element holds a value of the wrong form."""
