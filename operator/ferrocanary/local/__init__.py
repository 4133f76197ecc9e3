"""The one-machine sandbox: a real control plane, kwok nodes and Prometheus on 127.0.0.1."""
