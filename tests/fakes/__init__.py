"""In-memory fakes of the operator's Protocols (``JsonApi``, ``MetricsSource``) and the world they make
up, for unit tests only: the integration and e2e tests run the real apiserver and Prometheus instead.
Nothing here imports a test module, integration or e2e code.
"""
