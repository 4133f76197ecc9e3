"""Test-only helper processes and models for the operator's integration tests (never fakes of the
control plane or Prometheus: these are the workloads those real systems observe)."""
