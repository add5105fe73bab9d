"""FlagLimit sampling and the sampling report, on synthetic labels."""

import csv

import numpy as np
import pytest

from trainer.formats.sampling import FLAG_LIMITS, flag_min, flaglimit_split, sampling_report


def _labels(counts, seed=0):
    labels = np.concatenate([np.full(c, k, dtype=np.int16) for k, c in enumerate(counts)])
    return np.random.default_rng(seed).permutation(labels)


def test_flag_min_is_five_percent_rounded_up():
    assert [flag_min(v) for v in FLAG_LIMITS] == [13, 26, 52, 103, 205, 410, 820]
    assert flag_min(100) == 5 and flag_min(20) == 1


def test_class_below_flag_min_is_excluded_and_the_boundary_kept():
    labels = _labels([205, 204, 5000])
    split = flaglimit_split(labels, 4096)
    assert split.kept_classes == [0, 2]
    assert split.excluded_classes == [1]
    used = np.concatenate([split.train_idx, split.val_idx])
    assert not np.any(labels[used] == 1)


def test_each_kept_class_is_capped_at_the_limit():
    labels = _labels([5000, 300, 1000])
    split = flaglimit_split(labels, 512)
    used = np.concatenate([split.train_idx, split.val_idx])
    assert len(np.unique(used)) == len(used)  # no sample twice, train and val disjoint
    assert np.bincount(labels[used], minlength=3).tolist() == [512, 300, 512]
    assert split.flag_min == 26


def test_split_is_stratified_80_20_per_class():
    labels = _labels([1000, 333, 47])
    split = flaglimit_split(labels, 512)
    tr = np.bincount(labels[split.train_idx], minlength=3)
    va = np.bincount(labels[split.val_idx], minlength=3)
    assert tr.tolist() == [410, 266, 38]  # round(0.8 n), halves up, of 512, 333, 47
    assert va.tolist() == [102, 67, 9]
    assert np.all(np.diff(split.train_idx) > 0) and np.all(np.diff(split.val_idx) > 0)


def test_same_seed_same_sample_other_seed_other_sample():
    labels = _labels([3000, 2000, 800])
    a, b = flaglimit_split(labels, 1024, seed=42), flaglimit_split(labels, 1024, seed=42)
    c = flaglimit_split(labels, 1024, seed=7)
    assert np.array_equal(a.train_idx, b.train_idx) and np.array_equal(a.val_idx, b.val_idx)
    assert not np.array_equal(a.train_idx, c.train_idx)
    assert len(a.train_idx) == len(c.train_idx)


def test_smaller_limit_draws_a_subset_of_the_larger_one():
    labels = _labels([3000, 2000])
    small, big = flaglimit_split(labels, 512), flaglimit_split(labels, 2048)
    small_all = np.concatenate([small.train_idx, small.val_idx])
    big_all = np.concatenate([big.train_idx, big.val_idx])
    assert np.isin(small_all, big_all).all()


def test_unlabelled_cells_are_never_sampled_and_absent_classes_reported():
    labels = np.concatenate([_labels([100, 100]), np.full(50, -1, np.int16)])
    split = flaglimit_split(labels, 256, num_classes=3)
    assert split.kept_classes == [0, 1] and split.excluded_classes == [2]
    assert (labels[np.concatenate([split.train_idx, split.val_idx])] >= 0).all()


def test_model_labels_renumber_the_kept_classes():
    labels = _labels([300, 3, 300])
    split = flaglimit_split(labels, 256)
    assert split.kept_classes == [0, 2]
    y = split.model_labels(labels, split.train_idx)
    assert set(y.tolist()) == {0, 1}
    assert np.array_equal(y == 1, labels[split.train_idx] == 2)
    assert split.class_names(["a", "b", "c"]) == ["a", "c"]
    with pytest.raises(ValueError, match="excluded"):
        split.model_labels(labels, np.flatnonzero(labels == 1))


def test_report_counts_equal_the_split_at_every_limit():
    counts = [6330, 689, 184, 3449, 12, 900]
    labels = _labels(counts)
    report = sampling_report(labels, list("abcdef"))
    assert report.n_available == sum(counts)
    for limit in FLAG_LIMITS:
        split = flaglimit_split(labels, limit, seed=3)
        s = report.summary(limit)
        assert s.kept_classes == split.kept_classes
        assert s.train.tolist() == np.bincount(labels[split.train_idx], minlength=6).tolist()
        assert s.val.tolist() == np.bincount(labels[split.val_idx], minlength=6).tolist()
    s = report.summary(4096)
    assert s.excluded.tolist() == [False, False, True, False, True, False]
    assert s.n_used == 4096 + 689 + 3449 + 900
    assert s.reduction == pytest.approx(sum(counts) / s.n_used)


def test_report_table_and_csv(tmp_path):
    labels = _labels([500, 20])
    report = sampling_report(labels, ["big", "small"], limits=(256, 1024))
    table = report.format_table()
    small_row = next(line for line in table.splitlines() if line.startswith("small"))
    assert small_row.split() == ["small", "20", "20", "excl"]  # FlagMin 13 then 52
    out = tmp_path / "report.csv"
    report.to_csv(out)
    rows = list(csv.DictReader(out.read_text().splitlines()))
    assert len(rows) == 2 * 3  # two classes + total, per limit
    total = next(r for r in rows if r["limit"] == "256" and r["class"] == "(total)")
    assert total["used"] == "276"
    assert total["train_augmented"] == str(report.summary(256).n_train_augmented)
