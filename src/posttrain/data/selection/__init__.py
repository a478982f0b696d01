"""The data-selection stage of SAERL (issue 24): clusters, cluster-first batches with tail
mixing, a difficulty curriculum and a quality probe, on any `[rows, dims]` feature matrix."""

from posttrain.data.selection.pipeline import Selection, SelectionSettings, ordered_rows, select

__all__ = ["Selection", "SelectionSettings", "ordered_rows", "select"]
