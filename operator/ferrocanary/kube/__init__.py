"""The only code that talks to the Kubernetes API outside kopf itself."""
