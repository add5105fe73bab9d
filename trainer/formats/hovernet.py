"""HoVer-Net's per-image JSON: ``{"mag": 40, "nuc": {"<id>": {"bbox", "centroid": [x, y],
"contour": [[x, y], ...], "type_prob", "type"}}}`` (``run_infer.py``'s ``json/`` output).

One cell per nucleus at its centroid, its contour kept as the outline. ``type`` is an integer
into the model's ``type_info.json`` (PanNuke's: 0 no label, 1 neoplastic, ...), so the classes
come from a class set the caller names (``class_names``); without one the file is marked
``numeric_classes`` and the caller must resolve them. Type 0 ("no label" in HoVer-Net's own
type files) is kept as a class id like any other. ``type_prob`` is kept in the metadata.
"""

from __future__ import annotations

from pathlib import Path

from trainer.formats.cell_rows import CellFileError, CellRow, ParsedFile, brief, file_error
from trainer.formats.geojson_read import _stem, _xy, is_json_number, small_int


def is_hovernet(data) -> bool:
    return isinstance(data, dict) and isinstance(data.get("nuc"), dict)


def read_hovernet(path: Path, data, *, class_names: list[str] | None = None) -> ParsedFile:
    """Cells of a parsed HoVer-Net JSON document; ``CellFileError`` naming the nucleus."""
    parsed = ParsedFile(path, "HoVer-Net JSON", image_hint=_stem(path),
                        numeric_classes=class_names is None)
    mag = data.get("mag")
    for key, nucleus in data["nuc"].items():
        where = f"nucleus {brief(key)}"
        if not isinstance(nucleus, dict):
            raise file_error(path, where, "not an object {centroid, contour, type}")
        x, y = _xy(path, where, nucleus.get("centroid"))
        label = _type(path, where, nucleus.get("type"), class_names)
        outline = None
        contour = nucleus.get("contour")
        if contour is not None:
            if not isinstance(contour, list):
                raise file_error(path, where, "contour must be a list of [x, y]")
            points = [list(_xy(path, where, p)) for p in contour]
            if len(points) >= 3:
                outline = points + [points[0]] if points[0] != points[-1] else points
        meta: dict = {"hovernet_id": str(key)}
        prob = nucleus.get("type_prob")
        if isinstance(prob, int | float) and not isinstance(prob, bool) and small_int(prob):
            meta["type_prob"] = float(prob)
        if is_json_number(mag) and small_int(mag):
            meta["mag"] = mag
        parsed.rows.append(CellRow(x, y, where, None, label, outline, meta))
    if not parsed.rows:
        raise file_error(path, None, "no nuclei in the file ('nuc' is empty)")
    return parsed


def _type(path: Path, where: str, value, class_names: list[str] | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not small_int(value):
        raise file_error(path, where, f"type {brief(value)} is not an integer class id")
    if class_names is None:
        return str(value)
    if not 0 <= value < len(class_names):
        raise CellFileError(f"{path}, {where}: type {value} is not a class id "
                            f"0..{len(class_names) - 1} of the {len(class_names)} classes "
                            f"given")
    return class_names[value]
