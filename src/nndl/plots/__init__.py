"""Figures: histories, results and images in, matplotlib Figures out.

Nothing here calls ``plt.show`` or touches pyplot's global figures: every
function builds a :class:`matplotlib.figure.Figure` (rendered by Agg, so it
works without a display) and returns it. Save it with :func:`save_figure`
(atomic PNG) or let a notebook display it.

* :mod:`nndl.plots.history`: training curves, accuracy against training-set
  size, the per-layer speed of learning.
* :mod:`nndl.plots.images`: digit grids, misclassified digits, the confusion matrix.
"""

from .history import (
    COLORS,
    figure_png,
    plot_accuracy_vs_size,
    plot_gradient_speed,
    plot_layer_norms,
    plot_metrics,
    plot_train_vs_test,
    save_figure,
)
from .images import confusion_matrix_figure, digit_grid, mistakes_figure

__all__ = ["COLORS", "figure_png", "plot_accuracy_vs_size", "plot_gradient_speed", "plot_layer_norms",
           "plot_metrics", "plot_train_vs_test", "save_figure", "digit_grid", "mistakes_figure",
           "confusion_matrix_figure"]
