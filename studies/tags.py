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
    for element in dataset:
        if len(rows) >= limit:
            return
        rows.append(
            {
                "depth": depth,
                "indent": "· " * depth,
                "tag": f"({element.tag.group:04X},{element.tag.element:04X})",
                "name": element.name,
                "vr": element.VR,
                "value": _value(element),
            }
        )
        if element.VR == "SQ":
            for item in element.value:
                _walk(item, depth + 1, rows, limit)


def _value(element) -> str:
    if element.VR == "SQ":
        return f"{len(element.value)} item(s)"
    if element.VR in ("OB", "OW", "OF", "OD", "OL", "OV", "UN") or element.tag == 0x7FE00010:
        length = element.length if element.length not in (None, 0xFFFFFFFF) else "?"
        return f"<{length} bytes>"
    try:
        text = str(element.value)
    except Exception:  # a malformed value must not break the page
        return "<unreadable>"
    return text if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS] + "…"
