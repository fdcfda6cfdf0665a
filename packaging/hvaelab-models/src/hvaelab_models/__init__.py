"""hvaelab-models: the trained checkpoints of hvaelab (``pip install "hvaelab[models]"``).

Data only: the checkpoints of hvaelab's repository (``checkpoints/``), each a family of files
``NAME.json`` (the card), ``NAME.safetensors`` (the weights), ``NAME.history.csv`` and, where
computed, ``NAME.scores.safetensors``, ``NAME.samples.safetensors`` and
``NAME.second-stage.safetensors``. hvaelab finds them by name (``hvaelab.package_files.
installed_models_dir``) after ``$HVAELAB_CHECKPOINTS`` and before the per-user cache, and treats
them as read-only: ``hvaelab copy NAME DIR/NAME`` makes a writable copy.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

__version__ = "0.2.0"


def checkpoints_dir() -> Path:
    """The folder holding the installed checkpoints."""
    return Path(str(importlib.resources.files(__name__) / "checkpoints"))
