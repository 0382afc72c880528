"""Signals other apps listen to without studies importing them (arrows point one way).

``instance_imported`` is sent by the ingest service inside the transaction that created the
instance, after its rows exist: receivers may add rows of their own in the same transaction and
register ``transaction.on_commit`` work (the diagnostics app creates its analysis runs here).
Arguments: ``instance`` (the new ``Instance``), ``study``, ``actor`` (``accounts.audit.Actor``)
and ``batch``: a dict shared by every instance recorded in the same transaction, where a
receiver keeps what it looks up once for all of them (diagnostics: the active models).
"""

from django.dispatch import Signal

instance_imported = Signal()
