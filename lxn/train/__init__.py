"""Training: the plain loop (`loop.py`), its config, and the Ray Train wiring (`trainer.py`)."""
