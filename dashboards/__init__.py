"""The dashboards: HTML pages with Plotly figures, mounted by the API app.

What other layers use: :data:`whatchanged.dashboards.pages.router` (the pages) and
:mod:`whatchanged.dashboards.figures` (the figures, also drawn into a batch run's
``report.html``).  Imports the presentation layer and the engine only.
"""
