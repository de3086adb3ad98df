"""lxn: LogoXpertNet logo recognition at scale.

Importing the package has no side effects: no directories are created, no tracking URI is set,
no Ray cluster is started. Each concern lives in its own module (see README, "Layout").
"""

__version__ = "0.1.0"
