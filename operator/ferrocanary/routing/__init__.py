"""Traffic routers behind one small Protocol; ``registry`` is the only module naming them all."""
