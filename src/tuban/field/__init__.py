"""Field verification (外业复核): photo checks, EXIF, the sync service and resumable uploads.

* :mod:`tuban.field.policy`  — the photo policy as data
* :mod:`tuban.field.checks`  — pure photo checks (distance / view cone, field window, accuracy,
  mock location, EXIF agreement, duplicates, the photo set)
* :mod:`tuban.field.images`  — safe image inspection: magic bytes, pixel-flood limit, EXIF,
  perceptual hash, display copy
* :mod:`tuban.field.sync`    — idempotent field records with soft / hard conflicts, outline checks
* :mod:`tuban.field.backlog` — out-of-order records held, released, force-applied after N days
* :mod:`tuban.field.uploads` — tus-style resumable photo uploads into the blob store
* :mod:`tuban.field.processing` — EXIF, hash, display copy and checks after the acknowledgement
* :mod:`tuban.field.tiles`   — the offline imagery tile plan and its size budget

Nothing heavy is imported here.
"""
