"""Figures: arrays and results in, matplotlib Figures out.

Nothing here calls ``plt.show`` or touches pyplot's global figures: every
function builds a :class:`matplotlib.figure.Figure` (rendered by Agg, so it
works without a display) and returns it. Save it with ``fig.savefig(path)``
or let a notebook display it.
"""

from .images import confusion_matrix_figure, digit_grid, mistakes_figure

__all__ = ["digit_grid", "mistakes_figure", "confusion_matrix_figure"]
