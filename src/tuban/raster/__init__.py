"""Imagery for detection (影像): open scenes, one analysis grid, indices, masks, change scores.

Pure: imports nothing from ``tuban.store``, ``tuban.web`` or ``tuban.cli``. Heavy modules are
imported by the caller (``tuban.raster.scene``, ``tuban.raster.grid``, ``tuban.raster.change`` …).
"""
