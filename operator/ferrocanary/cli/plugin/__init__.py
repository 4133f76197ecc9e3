"""``kubectl ferrocanary`` (the ``kubectl-ferrocanary`` plugin), one module per concern.

main: the command line (kubectl's flags) and dispatch; cluster: RustCanaries through
``ferrocanary.kube`` and what an API error means to the user; view: a status as tables and lines;
get: ``get`` in each output format; actions: promote, abort, pause, resume; delegate: ``report`` and
``analyze`` handed to the ferrocanary commands of those names.
"""
