"""ferrocanary: prove in production that the Rust build of a service beats its Python build.

The package is layered (see .importlinter): ``model`` and ``judge`` and ``policy`` are pure;
``metrics``, ``routing`` and ``kube`` are adapters; ``reconcile`` runs one analysis tick;
``handlers`` are the thin kopf entry points; ``cli``, ``local`` and ``bench`` sit on top.
"""

__version__ = "0.1.0"
