"""The benchmark job's measurements (``jobs/benchmark.py``): pure timing functions that print
nothing; the job assembles them into its table and JSON."""
