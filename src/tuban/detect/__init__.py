"""Detection (变化检测): two dates of imagery → disturbance patches, tiled, parallel, distributed.

Entry points: :func:`tuban.detect.engine.detect` and :func:`tuban.detect.evaluate.evaluate`.
"""
