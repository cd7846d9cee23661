"""Detection (变化检测): two dates of imagery → disturbance patches, tiled, parallel, distributed.

Entry points: :func:`tuban.detect.engine.detect` (``compute=False`` returns the run as a Dask graph that
reads nothing until computed), :func:`tuban.detect.engine.plan` and :func:`tuban.detect.evaluate.evaluate`.
"""
