"""Autoscaling: Prometheus signals, a pure policy, the budget clamp and the scale actuator."""
