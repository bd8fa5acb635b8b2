"""The tenfold report: one workload served naively and by tenfold, priced end to end."""
