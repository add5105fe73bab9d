"""Several annotators on one cohort (issue 19): copies for annotators, three-way merges of
their work back into one project, and how much they agree. Qt-free."""

from cellviewer.core.merge.copying import copy_for
from cellviewer.core.merge.three_way import MergeError, MergeResult, merge, merge_into

__all__ = ["MergeError", "MergeResult", "copy_for", "merge", "merge_into"]
