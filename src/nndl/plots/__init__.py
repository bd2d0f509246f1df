"""Figures: histories, results and images in, matplotlib Figures out (no ``plt.show``).

* :mod:`nndl.plots.history`: training curves, accuracy against training-set
  size, the per-layer speed of learning.
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

__all__ = ["COLORS", "figure_png", "plot_accuracy_vs_size", "plot_gradient_speed", "plot_layer_norms",
           "plot_metrics", "plot_train_vs_test", "save_figure"]
