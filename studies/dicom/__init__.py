"""Django-free DICOM handling: parse, validate, de-identify, render (pydicom + numpy)."""
