"""Scripts of the repository (not shipped): ``python -m scripts.quality``, ``python -m scripts.bench``."""
