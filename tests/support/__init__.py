"""Test helpers shared by every tier (unit, integration, e2e): the arm models, the processes that play
the two builds' traffic on the sandbox, and the wait-on-condition helper.

Never fakes of the control plane or Prometheus (those live in tests/fakes and only unit tests use
them): these are the workloads the real systems observe. Nothing here imports a test module.
"""
