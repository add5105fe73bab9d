"""Fuzzing the CSV and GeoJSON importers (hypothesis) on a real project store.

Inputs are of two kinds: near-valid files (a valid points CSV or QuPath GeoJSON, then mutated:
wrong types, huge integers, NaN and infinities, strings of spaces, missing keys, deep nesting,
unicode and unpaired surrogates, BOMs, other encodings, flipped bytes) and raw bytes. Whatever
the input, the importer either imports, and every cell it wrote lies inside its image, or raises
the project's own error (``ProjectError``) and writes nothing: the same cells, classes, images,
models, actions and history as before.

Reproducible and bounded: ``derandomize=True`` (the examples follow from the test itself, the
same on every run and machine) and no example database (nothing read from or written to
``.hypothesis/``); a fixed number of examples per test and no per-example deadline (the machine
may be loaded; time is bounded by the example counts, a few seconds per test).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st
from PIL import Image

from cellviewer.core.io.geojson import import_geojson
from cellviewer.core.io.points_csv import import_points_csv
from cellviewer.core.store import ProjectError

FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    # one project serves every example of a test: refused imports write nothing and accepted
    # ones are undone, so the examples cannot see each other
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.data_too_large],
)

SIZES = {"a.png": (40, 30), "b.png": (32, 24)}

# ---------------------------------------------------------------------------------------------
# Hostile values


class Raw(str):
    """JSON text to splice in verbatim (what json.dumps cannot write: 5,000 digits, nesting
    deeper than the encoder's recursion limit, bare NaN)."""


def _deep(n: int, kind: str) -> Raw:
    return Raw("[" * n + "]" * n) if kind == "list" else Raw('{"a":' * n + "1" + "}" * n)


def mostly(good: st.SearchStrategy, bad: st.SearchStrategy, tenths: int = 8):
    """``good`` in about ``tenths`` of ten draws, else ``bad``: mostly near-valid inputs, so
    the fuzzing gets past the first check into the importer and the store."""
    return st.integers(0, 9).flatmap(lambda i: good if i < tenths else bad)


spaces = st.text(alphabet=" \t\u00a0\u2003", min_size=0, max_size=5)
surrogate = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
unicode_text = mostly(st.text(max_size=12),
                      st.builds(lambda a, s: a + s, st.text(max_size=4), surrogate), 9)
huge_int = st.sampled_from([2**53 + 1, 2**63, -(2**63) - 1, 10**19, 10**400, -(10**30)])
weird_float = st.sampled_from([float("nan"), float("inf"), float("-inf"), 1e308, -1e308, 5e-324,
                               -0.0])
raw_json = (st.integers(19, 6000).map(lambda n: Raw("1" * n))
            | st.builds(_deep, st.integers(10, 3000), st.sampled_from(["list", "object"]))
            | st.sampled_from([Raw("NaN"), Raw("-Infinity"), Raw("1e999"), Raw("-0"),
                               Raw("1E400")]))
scalar = (st.none() | st.booleans() | st.integers(-10, 10_000) | st.floats() | huge_int
          | weird_float | spaces | unicode_text | raw_json)
weird = st.recursive(scalar, lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(unicode_text, inner, max_size=3), max_leaves=6)


def _dumps(doc) -> str:
    """JSON text of ``doc`` with its ``Raw`` parts spliced in (the encoder writes them as
    placeholder strings first; surrogates are written as \\uXXXX escapes)."""
    raws: list[str] = []

    def mark(value):
        if isinstance(value, Raw):
            raws.append(str(value))
            return f"@@RAW{len(raws) - 1}@@"
        if isinstance(value, list):
            return [mark(v) for v in value]
        if isinstance(value, dict):
            return {mark(k) if isinstance(k, Raw) else k: mark(v) for k, v in value.items()}
        return value

    text = json.dumps(mark(doc))  # NaN and infinities come out bare, as Python writes them
    for i, raw in enumerate(raws):
        text = text.replace(f'"@@RAW{i}@@"', raw, 1)
    return text


# ---------------------------------------------------------------------------------------------
# Near-valid GeoJSON

coordinate = st.floats(0, 30, allow_nan=False)
point = st.lists(coordinate, min_size=2, max_size=3)
ring = st.lists(point, min_size=3, max_size=6).map(lambda r: [*r, r[0]])
geometry = st.one_of(
    st.builds(lambda c: {"type": "Point", "coordinates": c}, point),
    st.builds(lambda c: {"type": "MultiPoint", "coordinates": c},
              st.lists(point, min_size=1, max_size=4)),
    st.builds(lambda r: {"type": "Polygon", "coordinates": [r]}, ring),
    st.builds(lambda rs: {"type": "MultiPolygon", "coordinates": [[r] for r in rs]},
              st.lists(ring, min_size=1, max_size=3)),
)
class_name = st.sampled_from(["Tumor", "Stroma", "Lymphocyte", "tumor"]) | spaces | unicode_text
classification = st.one_of(
    st.none(), class_name,
    st.fixed_dictionaries({"name": class_name},
                          optional={"color": st.lists(st.integers(-5, 300), min_size=3,
                                                      max_size=3)}),
    st.fixed_dictionaries({"names": st.lists(class_name, max_size=3)},
                          optional={"colorRGB": st.integers(-(2**31), 2**31)}),
)
probability = st.floats(0, 1) | st.sampled_from(["NaN", "Infinity", None])
measurements = st.one_of(
    st.none(),
    st.dictionaries(st.sampled_from(["p_Tumor", "p_Stroma", "p_", "Area", "p_ "]), probability,
                    max_size=4),
    st.lists(st.fixed_dictionaries({"name": st.sampled_from(["p_Tumor", "Area"]),
                                    "value": probability}), max_size=3),
)
metadata = st.dictionaries(
    st.sampled_from(["labelSource", "reviewStatus", "split", "note"]) | unicode_text,
    st.sampled_from(["manual", "imported", "corrected", "unreviewed", "reviewed", "?"])
    | unicode_text, max_size=3)
# cells already in the project (one in each image): an import may skip, update or clash with them
KNOWN = {"a.png": "0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b",
         "b.png": "0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2c"}
feature_id = st.one_of(st.none(), st.uuids().map(str), st.sampled_from(sorted(KNOWN.values())),
                       unicode_text, st.integers(0, 10**6))


@st.composite
def features(draw):
    props: dict = {"objectType": draw(st.sampled_from(["detection", "annotation", "cell"]))}
    for key, strategy in (("classification", classification), ("measurements", measurements),
                          ("metadata", metadata), ("name", unicode_text)):
        if draw(st.booleans()):
            props[key] = draw(strategy)
    feature = {"type": "Feature", "geometry": draw(geometry), "properties": props}
    fid = draw(feature_id)
    if fid is not None:
        feature["id"] = fid
    return feature


def _slots(doc, slots=None, depth=0):
    """Every (container, key) of ``doc``, to pick a place to mutate."""
    slots = [] if slots is None else slots
    if depth > 12:
        return slots
    items = doc.items() if isinstance(doc, dict) else enumerate(doc) \
        if isinstance(doc, list) else ()
    for key, value in items:
        slots.append((doc, key))
        _slots(value, slots, depth + 1)
    return slots


@st.composite
def mutated(draw, document):
    doc = draw(document)
    for _ in range(draw(mostly(st.just(0), st.integers(1, 3), 4))):
        slots = _slots(doc)
        if not slots:
            break
        parent, key = slots[draw(st.integers(0, len(slots) - 1))]
        if isinstance(parent, dict) and draw(st.booleans()):
            del parent[key]  # a missing key
        else:
            parent[key] = draw(weird)
    return doc


@st.composite
def encoded(draw, text: str) -> bytes:
    """``text`` as bytes: UTF-8 (with or without BOM) mostly, or another encoding, and maybe a
    flipped byte or a cut."""
    how = draw(st.sampled_from(["utf-8"] * 12 + ["utf-8-sig"] * 2 + ["utf-16", "latin-1",
                                                                     "bytes"]))
    if how == "latin-1":
        data = text.encode("latin-1", errors="replace")
    elif how == "bytes":
        data = text.encode("utf-8", errors="surrogatepass")
    else:
        data = text.encode(how, errors="surrogatepass")
    # (rare branches on a middle value: hypothesis draws the simplest, 0, often)
    if data and draw(st.integers(0, 7)) == 3:
        at = draw(st.integers(0, len(data) - 1))
        data = data[:at] + bytes([draw(st.integers(0, 255))]) + data[at + 1:]
    if data and draw(st.integers(0, 9)) == 5:
        data = data[:draw(st.integers(0, len(data)))]
    return data


@st.composite
def geojson_bytes(draw) -> bytes:
    feats = st.lists(features(), min_size=1, max_size=4)
    wrapper = draw(st.sampled_from(["collection", "list", "feature"]))
    if wrapper == "collection":
        document = feats.map(lambda f: {"type": "FeatureCollection", "features": f})
    elif wrapper == "list":
        document = feats
    else:
        document = features()
    return draw(encoded(_dumps(draw(mutated(document)))))


# ---------------------------------------------------------------------------------------------
# Near-valid points CSV

image_name = mostly(st.sampled_from(["a.png", "b.png", "c.png", "./a.png"]),
                    mostly(st.sampled_from(["missing.png", "", "~no-such-user-cellviewer/a.png",
                                            "p.cvproj", "a" * 300 + ".png", "../images/a.png",
                                            "images", "a\x00.png", " a.png"]),
                           unicode_text, 7), 7)
number_text = mostly(st.floats(0, 20, allow_nan=False).map(repr),
                     st.sampled_from(["nan", "inf", "-inf", "1e400", "-1", "1" * 400, " 5 ", "",
                                      "abc", "1_0", "0x10", "40.0001", "-0.0", "1,5"]))
csv_value = mostly(st.sampled_from(["tumour", "stroma", "", "0", "1", "manual", "reviewed",
                                    "unreviewed", "imported"]),
                   st.sampled_from(["-1", "7", "bogus", '"', "a,b", "line\nbreak", "\t"])
                   | spaces | unicode_text)
COLUMNS = ["class", "label", "class_id", "cell_id", "label_source", "review_status", "split",
           "x_um", "p_tumour", ""]


@st.composite
def points_rows(draw):
    header = ["image", "x", "y"]
    header += draw(st.lists(st.sampled_from(COLUMNS), max_size=3, unique=True))
    rows = []
    for _ in range(draw(mostly(st.integers(1, 5), st.just(0), 9))):
        row = {"image": draw(image_name), "x": draw(number_text), "y": draw(number_text)}
        for column in header[3:]:
            if column == "cell_id":
                row[column] = draw(st.uuids().map(str) | st.sampled_from(["", "not-a-uuid"]))
            else:
                row[column] = draw(csv_value)
        rows.append([row[c] for c in header])
    # mutations: a column renamed, dropped or doubled; a row too long or too short
    for _ in range(draw(mostly(st.just(0), st.integers(1, 2), 6))):
        kind = draw(st.sampled_from(["rename", "drop-cell", "extra-cell", "duplicate-column",
                                     "spaces-header"]))
        if kind == "rename":
            header[draw(st.integers(0, len(header) - 1))] = draw(unicode_text | spaces)
        elif kind == "duplicate-column":
            header.append(draw(st.sampled_from(header)).upper())
        elif kind == "spaces-header":
            header = [f" {h} " for h in header]
        elif rows:
            row = rows[draw(st.integers(0, len(rows) - 1))]
            if kind == "drop-cell" and row:
                row.pop()
            else:
                row.append(draw(csv_value))
    return header, rows


@st.composite
def csv_bytes(draw) -> bytes:
    header, rows = draw(points_rows())
    delimiter = draw(st.sampled_from([",", "\t"]))
    ending = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    if draw(st.booleans()):  # a proper writer: quotes what needs quoting
        out = io.StringIO()
        writer = csv.writer(out, delimiter=delimiter, lineterminator=ending)
        writer.writerow(header)
        writer.writerows(rows)
        text = out.getvalue()
    else:  # a naive one: a comma or quote in a value breaks the row
        text = ending.join(delimiter.join(r) for r in [header, *rows]) + ending
    return draw(encoded(text))


# ---------------------------------------------------------------------------------------------
# The properties


def _inside_images(store) -> bool:
    """Every cell of the project (new, moved or old) lies inside its image."""
    table = store.cell_table()
    sizes = {im.id: (im.width, im.height) for im in store.images()}
    for image_id, x, y in zip(table["image_id"], table["x"], table["y"], strict=True):
        w, h = sizes[int(image_id)]
        if not (0 <= x <= w and 0 <= y <= h):
            return False
    return True


def _seed(project) -> None:
    """The cells of ``KNOWN``, added once per project (not undone by the examples)."""
    store = project.store
    if not store.existing_cell_ids(list(KNOWN.values())):
        for name, cell_id in KNOWN.items():
            store.add_cells(project.image_ids[name], [[3.0, 4.0]], ids=[cell_id])


def _check(project, snapshot, run) -> None:
    """Run one import: either it imports (cells inside their images; then undone, so the next
    example sees the same project) or it is refused with ProjectError and wrote nothing. Any
    other exception fails the test (and hypothesis shrinks the input)."""
    store = project.store
    before = snapshot(store)
    try:
        result = run()
    except ProjectError as e:
        assert str(e), "an empty message"
        assert snapshot(store) == before, f"refused ({e}) but wrote"
        return
    assert _inside_images(store), "a cell outside its image"
    if result.ids or result.updated or result.images_added or result.classes_added:
        assert store.undo()
    # The undo took back the cells, classes and images (a model the import registered for its
    # probabilities stays: registering a model is no undoable edit in the store).
    assert snapshot(store)[:4] == before[:4]


@settings(FUZZ, max_examples=200)
@given(data=geojson_bytes(), existing=st.sampled_from(["error", "skip", "update"]))
def test_fuzzed_geojson_is_imported_or_refused_with_the_projects_error(project, snapshot,
                                                                       tmp_path, data, existing):
    _seed(project)
    path = tmp_path / "fuzz.geojson"
    path.write_bytes(data)
    _check(project, snapshot, lambda: import_geojson(project.store, path,
                                                     project.image_ids["a.png"],
                                                     existing=existing))


@settings(FUZZ, max_examples=60)
@given(data=st.binary(max_size=300) | st.builds(lambda a, b: a + b, st.sampled_from(
    [b"", b"\xef\xbb\xbf", b'{"type": "FeatureCollection", "features": [', b"[{", b"\xff\xfe"]),
    st.binary(max_size=200)))
def test_raw_bytes_as_geojson_are_refused_with_the_projects_error(project, snapshot, tmp_path,
                                                                  data):
    path = tmp_path / "raw.geojson"
    path.write_bytes(data)
    _check(project, snapshot, lambda: import_geojson(project.store, path,
                                                     project.image_ids["a.png"]))


@settings(FUZZ, max_examples=250)
@given(data=csv_bytes(), names=st.sampled_from([None, ["normal", "macrocyte"]]))
def test_fuzzed_points_csv_is_imported_or_refused_with_the_projects_error(project, snapshot,
                                                                          tmp_path, data, names):
    _images_beside(project.folder)
    path = tmp_path / "fuzz.csv"
    path.write_bytes(data)
    _check(project, snapshot, lambda: import_points_csv(project.store, path, project.folder,
                                                        class_names=names))


@settings(FUZZ, max_examples=60)
@given(data=st.binary(max_size=300) | st.builds(lambda a, b: a + b, st.sampled_from(
    [b"", b"\xef\xbb\xbf", b"image,x,y\n", b"image,x,y\na.png,", b"image\tx\ty\r\n"]),
    st.binary(max_size=200)))
def test_raw_bytes_as_points_csv_are_refused_with_the_projects_error(project, snapshot,
                                                                     tmp_path, data):
    path = tmp_path / "raw.csv"
    path.write_bytes(data)
    _check(project, snapshot, lambda: import_points_csv(project.store, path, project.folder))


def test_the_generators_make_files_that_import(project, tmp_path):
    """Valid files come out of the near-valid generators too: a fuzz test whose inputs were all
    refused at parse would test little of the importers."""
    assert json.loads(_dumps({"a": Raw("NaN"), "b": [Raw("[[]]")]}))["b"] == [[[]]]
    _images_beside(project.folder)
    quick = settings(FUZZ, max_examples=300, phases=[Phase.generate])  # the first, unshrunk

    def imports(run) -> bool:
        try:
            result = run()
        except ProjectError:
            return False
        project.store.undo()
        return result.n_cells > 0

    def geojson_imports(data: bytes) -> bool:
        (tmp_path / "f.geojson").write_bytes(data)
        return imports(lambda: import_geojson(project.store, tmp_path / "f.geojson",
                                              project.image_ids["a.png"]))

    def csv_imports(data: bytes) -> bool:
        (tmp_path / "f.csv").write_bytes(data)
        return imports(lambda: import_points_csv(project.store, tmp_path / "f.csv",
                                                 project.folder))

    assert find(geojson_bytes(), geojson_imports, settings=quick)
    assert find(csv_bytes(), csv_imports, settings=quick)


def _images_beside(folder: Path) -> None:
    """c.png: an image in the images' folder that the project does not have yet (a CSV import
    adds it, and its undo removes it)."""
    if not (folder / "c.png").exists():
        Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(folder / "c.png")
