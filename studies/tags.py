"""Rows of the DICOM tag browser: (depth, tag, keyword/name, VR, value shown)."""

from __future__ import annotations

MAX_VALUE_CHARS = 200


def dataset_rows(dataset, depth: int = 0, limit: int = 2000) -> list[dict]:
    rows: list[dict] = []
    if depth == 0 and getattr(dataset, "file_meta", None) is not None:
        _walk(dataset.file_meta, 0, rows, limit)
    _walk(dataset, depth, rows, limit)
    return rows


def _walk(dataset, depth: int, rows: list[dict], limit: int) -> None:
    for tag in dataset.keys():
        if len(rows) >= limit:
            return
        raw = dataset.get_item(tag)  # not converted: deferred values stay unread
        vr = str(getattr(raw, "VR", "") or "")
        row = {
            "depth": depth,
            "indent": "· " * depth,
            "tag": f"({tag.group:04X},{tag.element:04X})",
            "name": "",
            "vr": vr,
            "value": "",
        }
        rows.append(row)
        if vr in BINARY_VRS or tag == PIXEL_DATA:
            row["name"] = _name(tag)
            row["value"] = f"<{_length(raw)} bytes>"
            continue
        try:
            element = dataset[tag]
        except Exception:  # a malformed element must not break the page
            row["name"], row["value"] = _name(tag), "<unreadable>"
            continue
        row["name"], row["vr"] = element.name, element.VR
        if element.VR == "SQ":
            row["value"] = f"{len(element.value)} item(s)"
            for item in element.value:
                _walk(item, depth + 1, rows, limit)
        else:
            text = str(element.value)
            row["value"] = text if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS] + "…"


BINARY_VRS = {"OB", "OW", "OF", "OD", "OL", "OV", "UN", "OB or OW", "US or OW"}
PIXEL_DATA = 0x7FE00010


def _name(tag) -> str:
    from pydicom.datadict import dictionary_description

    try:
        return dictionary_description(tag)
    except KeyError:
        return "Private tag" if tag.group % 2 else "Unknown"


def _length(raw) -> str:
    length = getattr(raw, "length", None)
    if length is None:
        value = getattr(raw, "value", None)
        length = len(value) if isinstance(value, bytes | bytearray) else None
    return "?" if length in (None, 0xFFFFFFFF) else str(length)
