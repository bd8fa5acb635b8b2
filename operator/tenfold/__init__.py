"""tenfold: serve models on Kubernetes cheaply."""

__version__ = "0.1.0"
