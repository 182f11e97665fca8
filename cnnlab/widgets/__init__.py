"""Interactive figures for the notebooks: move a slider, see the picture change.

Given code, not an exercise. Every explorer calls *your* functions from ``cnnlab``
(looked up each time it redraws, so a saved change shows at the next move): what you
see is your own implementation at work, and when your function disagrees with the
picture, the caption says so in red.

- :func:`geometry_explorer`: padding, stride and dilation, and your ``conv_output_size``;
- :func:`flip_and_slide_1d` and :func:`flip_and_slide_2d`: one output entry of your
  ``convolve``/``correlate`` (``convolve2d``/``correlate2d``) as a sum of products;
- :func:`kernel_editor`: type a 3×3 kernel, see your ``correlate2d`` filter a photo;
- :func:`max_pool_explorer`: where your ``max_pool2d_backward`` sends a gradient.

Each returns an :class:`Explorer`: controls, a caption and a picture. In JupyterLab
moving a control redraws the picture. Where no widget can be shown (a notebook run
headless, an HTML copy, a viewer without a kernel) the same output carries the first
picture as a plain PNG, so the notebook still shows it. ipywidgets and matplotlib
are imported only when an explorer is built: ``import cnnlab`` needs NumPy alone.
"""

from cnnlab.widgets._explorer import Explorer
from cnnlab.widgets.flip_and_slide import flip_and_slide_1d, flip_and_slide_2d
from cnnlab.widgets.geometry import geometry_explorer
from cnnlab.widgets.kernel_editor import kernel_editor
from cnnlab.widgets.max_pool import max_pool_explorer

__all__ = ["Explorer", "flip_and_slide_1d", "flip_and_slide_2d", "geometry_explorer",
           "kernel_editor", "max_pool_explorer"]
