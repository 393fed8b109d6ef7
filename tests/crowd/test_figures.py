"""crowdkit.crowd.figures: every figure of a run page and of the summary draws, also with nothing to show."""
from __future__ import annotations

import pandas as pd
import pytest

from crowdkit.crowd import figures


@pytest.mark.slow  # shares the tiny run above
def test_every_figure_draws(tiny):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    result, _ = tiny
    drawn = [figures.plot_queries(result), figures.plot_overview(result), figures.plot_levels(result),
             figures.plot_examples(result, "study"), figures.plot_curves(result, "iou"),
             figures.plot_kde(result, "study").figure, figures.plot_distance_vs_size(result).figure,
             figures.plot_summary(result.performance), figures.plot_kdes(result),
             figures.plot_summary(pd.DataFrame())]
    assert all(fig.axes for fig in drawn)
    plt.close("all")
