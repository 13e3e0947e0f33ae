"""Measuring the models: evaluation sets, musical measures, baselines, reports and benchmarks."""
