"""The README's Dask route (one task per slide on a ``dask.distributed`` LocalCluster, by the
functions the commands run) gives what the commands give."""

from __future__ import annotations

import numpy as np
import pytest
from cohort_testdata import CLASSES, folder_files, make_cohort, read_result_rows, tiny_model

from cellviewer.cli.cohort_tasks import predict_slide_task
from cellviewer.cli.main import main
from cellviewer.core.cohort import CohortSummary, detect_slide, read_inputs

distributed = pytest.importorskip("dask.distributed")


def test_a_dask_local_cluster_gives_the_commands_results(tmp_path, monkeypatch):
    monkeypatch.setenv("CELLVIEWER_CPU_BACKEND", "torch")
    manifest = make_cohort(tmp_path, tiles=3, extra_rows=["tiles/gone.png,"])
    model = tiny_model(tmp_path / "m.cvmodel")
    items = read_inputs([manifest])
    out, scored = tmp_path / "dask-results", tmp_path / "dask-scored"
    out.mkdir()
    scored.mkdir()
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as client:
        detected = client.gather(client.map(detect_slide, items, out=str(out)))
        outcomes = client.gather(client.map(predict_slide_task, items, out=str(scored),
                                            model=str(model), cells=str(out)))
    summary = CohortSummary(len(items))
    for outcome in outcomes:
        summary.add(outcome)
    assert [o.ok for o in detected] == [o.ok for o in outcomes]
    assert [o.name for o in summary.failed] == ["tiles/gone.png"]
    assert "gone.png" in summary.failed[0].message

    assert main(["detect", str(manifest), "--out", str(tmp_path / "cli")]) == 3
    assert main(["predict", str(manifest), "--cells", str(tmp_path / "cli"), "--model",
                 str(model), "--out", str(tmp_path / "cli-scored")]) == 3
    assert folder_files(out) == folder_files(tmp_path / "cli")
    a, b = read_result_rows(scored), read_result_rows(tmp_path / "cli-scored")
    assert a.keys() == b.keys() and len(a) == summary.cells
    for cell_id, row in a.items():
        other = b[cell_id]
        assert (row["x"], row["y"], row["predicted_class"]) == \
            (other["x"], other["y"], other["predicted_class"])
        assert np.allclose([float(row[f"p_{c}"]) for c in CLASSES],
                           [float(other[f"p_{c}"]) for c in CLASSES], atol=1e-5, rtol=0)
    assert sum(summary.class_counts.values()) == summary.cells
