"""The field app (外业核查 App): the sync API router and the offline-first PWA it serves.

``from tuban.fieldapp.router import router`` is included by :func:`tuban.web.create_app`;
:func:`tuban.fieldapp.services.configure_field` sets the blob and upload folders (else they
come from ``$TUBAN_BLOB_DIR`` or sit next to the SQLite file).
"""
