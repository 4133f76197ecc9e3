"""Benchmark harnesses that print their figures as JSON (judge simulation, workload load test)."""
