"""robustmvc: attack and defense of deep multi-view clustering, reproducible end to end."""

__version__ = "0.1.0"
