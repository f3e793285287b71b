"""Interactive exploration: subject browser, linked Fig 2 plots, measurement annotator.

The paper's measurements were placed by hand, and the first question about an
outlier is "show me that subject's motor cortex". This package answers it in
JupyterLab (``notebooks/07_explorer.ipynb``), one module per role:

- :mod:`~m1lib.explorer.state` - what is shown (participant, slice, echo or R2*
  map, window/level, zoom, overlays); pure Python, tested without a browser;
- :mod:`~m1lib.explorer.overlays` - the measurement's own ROIs, calipers and edge
  fits on the shown slice, measured live from the working annotations;
- :mod:`~m1lib.explorer.annotator` - moving a caliper or the reference point,
  undo, and saving through :mod:`m1lib.markups`, with
  :mod:`~m1lib.explorer.validation` (save only what ``m1lib measure`` can
  measure) and :mod:`~m1lib.explorer.annotation_file` (atomic writes, backups
  outside the dataset's annotation folder, conflicts, read-only datasets);
- :mod:`~m1lib.explorer.linked` - the Fig 2 scatter plots; picking a point shows
  that participant's area;
- :mod:`~m1lib.explorer.views` and :mod:`~m1lib.explorer.text` - drawing
  (matplotlib / ipympl) and words; :mod:`~m1lib.explorer.app` - the ipywidgets app.

Measurements always come from :mod:`m1lib.measure`; nothing is re-implemented here.

Examples
--------
In a notebook::

    from m1lib import explorer
    explorer.use_widget_backend()
    ex = explorer.Explorer.from_manifest("data_manifest.yaml")
    explorer.ExplorerView(ex)
"""
from .annotation_file import AnnotationConflict, AnnotationFile
from .annotator import Annotator
from .app import ExplorerView
from .linked import PANELS, LinkedPlots
from .overlays import OVERLAYS, Overlay
from .state import R2STAR, WHOLE_SLICE, BrowserState, Explorer
from .validation import check_before_save
from .views import as_image, draw_browser, snapshot_figure, use_widget_backend

__all__ = [
    "AnnotationConflict", "AnnotationFile", "Annotator", "BrowserState", "Explorer", "ExplorerView",
    "LinkedPlots", "OVERLAYS", "Overlay", "PANELS", "R2STAR", "WHOLE_SLICE", "as_image",
    "check_before_save", "draw_browser", "snapshot_figure", "use_widget_backend",
]
