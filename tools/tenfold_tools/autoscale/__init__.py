"""The autoscaler's offline evaluation: a trace-driven simulation of the real policy."""
