"""The wheel carries what an installed app needs: resources, desktop entry, metainfo, icon."""

from __future__ import annotations

import configparser
import subprocess
import sys
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out)],
        cwd=REPO, capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (path,) = out.glob("cellviewer-*.whl")
    return zipfile.ZipFile(path)


def test_wheel_contains_resources(wheel):
    names = set(wheel.namelist())
    for needed in [
        "cellviewer/resources/icons/cellviewer.png",
        "cellviewer/resources/icons/cellviewer.svg",
        "cellviewer/resources/classes/chula-rbc-12.json",
        "cellviewer/resources/classes/crc-histophenotypes.json",
        "cellviewer/resources/demo/points.csv",
        "cellviewer/resources/demo/images/LICENSE-chula-rbc-12.txt",
        "cellviewer/resources/demo/slides/CMU-1-Small-Region.svs",
        "trainer/cli.py",
    ]:
        assert needed in names, f"{needed} missing from the wheel"
    demo_images = [n for n in names if n.startswith("cellviewer/resources/demo/images/")]
    assert len(demo_images) >= 40


def test_wheel_installs_desktop_integration(wheel):
    data = [n for n in wheel.namelist() if ".data/data/share/" in n]
    assert any(n.endswith("applications/org.cellviewer.CellViewer.desktop") for n in data)
    assert any(n.endswith("metainfo/org.cellviewer.CellViewer.metainfo.xml") for n in data)
    icon = "icons/hicolor/scalable/apps/org.cellviewer.CellViewer.svg"
    assert any(n.endswith(icon) for n in data)
    assert any(n.endswith("mime/packages/org.cellviewer.CellViewer.xml") for n in data)


def test_desktop_entry_is_valid():
    cp = configparser.ConfigParser(interpolation=None)
    cp.optionxform = str
    cp.read(REPO / "packaging" / "cellviewer.desktop")
    entry = cp["Desktop Entry"]
    assert entry["Type"] == "Application"
    assert entry["Exec"].split()[0] == "cellviewer"
    assert entry["Icon"] == "org.cellviewer.CellViewer"


def test_metainfo_names_the_desktop_file():
    root = ET.parse(REPO / "packaging" / "org.cellviewer.CellViewer.metainfo.xml").getroot()
    assert root.findtext("id") == "org.cellviewer.CellViewer"
    assert root.findtext("launchable") == "org.cellviewer.CellViewer.desktop"


MIME = "application/x-cellviewer-project"


def test_the_project_file_has_a_mime_type_the_desktop_file_opens(tmp_path):
    """The shared-mime-info package names *.cvproj (a kind of SQLite file) and the desktop
    entry lists the type; update-mime-database compiles it as written."""
    import shutil

    xml = REPO / "packaging" / "org.cellviewer.CellViewer.mime.xml"
    ns = {"m": "http://www.freedesktop.org/standards/shared-mime-info"}
    (mime,) = ET.parse(xml).getroot().findall("m:mime-type", ns)
    assert mime.get("type") == MIME
    assert [g.get("pattern") for g in mime.findall("m:glob", ns)] == ["*.cvproj"]
    assert mime.find("m:sub-class-of", ns).get("type") == "application/vnd.sqlite3"
    cp = configparser.ConfigParser(interpolation=None)
    cp.optionxform = str
    cp.read(REPO / "packaging" / "cellviewer.desktop")
    assert MIME in cp["Desktop Entry"]["MimeType"].split(";")
    if shutil.which("update-mime-database") is None:
        pytest.skip("update-mime-database is not installed")
    (tmp_path / "mime" / "packages").mkdir(parents=True)
    shutil.copy(xml, tmp_path / "mime" / "packages" / "org.cellviewer.CellViewer.xml")
    done = subprocess.run(["update-mime-database", str(tmp_path / "mime")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"60:{MIME}:*.cvproj" in (tmp_path / "mime" / "globs2").read_text()
    assert f"{MIME} application/vnd.sqlite3" in (tmp_path / "mime" / "subclasses").read_text()
