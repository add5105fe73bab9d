from collections import Counter

from cellviewer.core.project.demo import demo_images, demo_points, load_class_set
from cellviewer.paths import demo_dir


def test_demo_points_name_existing_images_and_known_classes():
    points = demo_points()
    classes = {c["name"] for c in load_class_set()["classes"]}
    assert len(points) > 3000
    assert {p.label for p in points} == classes  # every class of Chula RBC-12 is present
    for image in {p.image for p in points}:
        assert (demo_dir() / image).is_file(), image


def test_demo_has_tiles_and_a_slide_with_licences():
    images = demo_images()
    assert sum(p.suffix == ".jpg" for p in images) == 40
    assert any(p.suffix == ".svs" for p in images)
    assert (demo_dir() / "images" / "LICENSE-chula-rbc-12.txt").is_file()
    assert (demo_dir() / "slides" / "LICENSE-CMU-1-Small-Region.txt").is_file()


def test_demo_class_counts_allow_training():
    counts = Counter(p.label for p in demo_points())
    assert min(counts.values()) >= 40
