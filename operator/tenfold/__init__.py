"""tenfold: serve models on Kubernetes cheaply."""
