"""What the analyst opens in the morning: a self-contained HTML page per committed scan and per
range of nights (build.py, page.py), its picked rows and thumbnails (picks.py, thumbs.py), and the
drift verdict the scan's summary carries (drift.py, from the nights before: history.py).
Importing this package loads no Ray, torch or MLflow."""
