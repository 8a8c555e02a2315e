"""The benchmark suite's parts: naive bridges, probes, scenarios and the report.

``tools/benchmark.py`` is the command; each module here does one job.
"""
