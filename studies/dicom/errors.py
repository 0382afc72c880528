"""Errors of the DICOM package, each with a message a user can act on.

Every error a file can cause derives from :class:`DicomError`, so an ingest loop needs one
``except DicomError`` to turn any bad file into a per-file result while the others go on.
"""


class DicomError(Exception):
    """Base class for everything this package raises on bad input."""


class DicomValueError(DicomError, ValueError):
    """A DICOM element holds a value of the wrong form."""


class NotDicomError(DicomError):
    """The file is not DICOM at all (a PDF or a photo renamed ``.dcm``, an empty file…)."""


class DicomCorruptError(DicomError):
    """The file starts as DICOM but is damaged or truncated (cut off during a copy)."""


class MissingUIDError(DicomError):
    """The dataset lacks a UID that every stored instance needs."""


class NotAnInstanceError(DicomError):
    """The file is DICOM but no instance to store (a DICOMDIR, a colour palette…)."""


class NoPixelDataError(DicomError):
    """An image was asked of an instance that holds none (a report, a PDF, a dose SR)."""


class PixelDecodeError(DicomError):
    """The pixel data cannot be decoded with the installed decoders."""


class FrameIndexError(DicomError, IndexError):
    """A frame number outside the instance's frames."""


class ImageError(DicomError):
    """A JPEG or PNG to wrap as Secondary Capture cannot be used."""


class ImageTooLargeError(ImageError):
    """An image has more pixels than the configured limit (checked before decoding)."""


class ArchiveError(DicomError):
    """A whole archive cannot be read (not a ZIP, damaged central directory, too many members)."""


class ArchiveMemberError(DicomError):
    """One member of an archive is refused; the other members still come through."""


class DicomdirError(DicomError):
    """A DICOMDIR cannot be read, or one of its records points nowhere usable."""
