"""Thin kopf handlers: parse, call reconcile, return status. The only kopf importers."""
