"""Configuration search (issue 15): the grid a service may be served with, the search over it
(quick hill climbing or brute force), the objective and constraints, and the patch of the
winner. Pure: measuring a candidate is the caller's (the runtime's local runner)."""
