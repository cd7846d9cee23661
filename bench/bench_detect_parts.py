"""Where a serial detection's CPU goes: thread CPU seconds per stage, on the pair of ``bench_detect_speed.py``.

Each stage's function is wrapped for the run (``time.thread_time`` around every call, on whatever thread it
runs: the date readers, the assembling thread, the kernels' thread); a stage called inside another is
counted under it, so the parts of one stage never add to two. Prints, per run, every stage's CPU seconds
and its share of the run's process CPU, what no stage accounts for (thread start-up, queues, Python between
the stages), and the lines the issue's speed paragraph asks about: decoding against the rest, morphology
and labelling, vectorisation.

The stages are the engine's own functions, named here: after a refactor a stage that is never called prints
0 calls (``tests/detect/test_bench_parts.py`` runs this on a small pair and checks that none is missing).

Usage: ``python bench/bench_detect_parts.py [--size 4096] [--dir DIR] [--repeat 2] [--tile-size 2048]``
(``--size 16384 --dir /tmp/det16`` for the full-size pair; the files of ``bench_detect_speed.py --dir`` are
reused). The first run warms the process and is not printed.
"""

from __future__ import annotations

import argparse
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: (stage, module, attribute) in the order printed; a stage named "a/b" is counted only inside stage "a"
STAGES: tuple[tuple[str, str, str], ...] = (
    ("read", "tuban.detect.kernel", "_read_date"),
    ("read/validity", "tuban.raster.fused", "valid_u16"),
    ("assembling", "tuban.detect.kernel", "_assemble"),
    ("statistics", "tuban.detect.kernel", "scene_stats"),
    ("background rows", "tuban.detect.kernel", "with_background"),
    ("background rows/cell sums", "tuban.raster.fused", "_cell_sums"),
    ("background rows/9×9 medians", "tuban.raster.fused", "_median_rows_k"),
    ("background rows/box plan", "tuban.raster.fused", "_plan_boxes_k"),
    ("tile pieces", "tuban.detect.kernel", "tile_pieces"),
    ("tile pieces/score", "tuban.raster.fused", "_rows_k"),
    ("tile pieces/smoothing", "cv2", "GaussianBlur"),
    ("tile pieces/threshold", "tuban.raster.fused", "_threshold_k"),
    ("tile pieces/opening and closing", "tuban.detect.kernel", "_clean"),
    ("tile pieces/labels", "tuban.detect.kernel", "_label"),
    ("tile pieces/piece sums", "tuban.raster.fused", "_piece_sums_k"),
    ("tile pieces/polygons", "tuban.detect.kernel", "_polygons"),
    ("merging and attributes", "tuban.detect.engine", "finish"),
)


class Clock:
    """Thread CPU seconds and calls per stage; a thread-local stack tells which stage a call is inside."""

    def __init__(self) -> None:
        self.cpu: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._where = threading.local()
        self._lock = threading.Lock()

    def clear(self) -> None:
        self.cpu.clear()
        self.calls.clear()

    def wrap(self, stage: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        parent = stage.rpartition("/")[0]

        def timed(*args: Any, **kwargs: Any) -> Any:
            stack = self._where.__dict__.setdefault("stack", [])
            inside = stack[-1] if stack else ""
            # counted only where it belongs: a child stage outside its parent (the statistics' own score) is not
            if parent and not (inside == parent or inside.startswith(parent + "/")):
                return fn(*args, **kwargs)
            stack.append(stage)
            t0 = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                dt = time.thread_time() - t0
                stack.pop()
                with self._lock:
                    self.cpu[stage] += dt
                    self.calls[stage] += 1

        return timed


def install(clock: Clock) -> Callable[[], None]:
    """Wrap every stage of :data:`STAGES`; returns the function that puts the originals back."""
    import importlib

    undo = []
    for stage, mod_name, attr in STAGES:
        mod = importlib.import_module(mod_name)
        orig = getattr(mod, attr)
        setattr(mod, attr, clock.wrap(stage, orig))
        undo.append((mod, attr, orig))

    def restore() -> None:
        for mod, attr, orig in reversed(undo):
            setattr(mod, attr, orig)

    return restore


def report(clock: Clock, wall: float, cpu: float) -> None:
    """Print the stages of one run and the summary line of their shares of its CPU."""
    print(f"run: {wall:.2f} s wall, {cpu:.2f} CPU-s ({cpu / wall:.2f} cores busy)")
    top = 0.0
    for stage, _mod, _attr in STAGES:
        name = stage.rpartition("/")[2]
        depth = stage.count("/")
        s = clock.cpu.get(stage, 0.0)
        if depth == 0:
            top += s
        print(f"  {'  ' * depth}{name:<{32 - 2 * depth}} {s:7.2f} CPU-s {100 * s / cpu:5.1f} %  "
              f"({clock.calls.get(stage, 0)} calls)")
    print(f"  {'no stage (threads, queues, Python between stages)':<32} {cpu - top:7.2f} CPU-s "
          f"{100 * (cpu - top) / cpu:5.1f} %")
    share = {k: clock.cpu.get(k, 0.0) / cpu for k, _m, _a in STAGES}
    decode = share["read"] - share["read/validity"]
    morph = share["tile pieces/opening and closing"] + share["tile pieces/labels"]
    print(f"  decoding (reads less validity) {100 * decode:.1f} % of the CPU, everything else {100 * (1 - decode):.1f} %;"
          f" morphology and labelling {100 * morph:.1f} %; vectorisation {100 * share['tile pieces/polygons']:.1f} %")


def main() -> int:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import bench_detect_speed as speed

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--tile-size", type=int, default=2048)
    ap.add_argument("--dir")
    ap.add_argument("--repeat", type=int, default=2, help="runs printed (after one that warms the process)")
    args = ap.parse_args()
    import tempfile

    from tuban.detect.engine import detect

    work = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="tuban-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    if (work / "after.tif").exists():
        before, after = work / "before.tif", work / "after.tif"
    else:
        before, after = speed.make_pair(work, args.size)
    speed._warm()
    speed.page_in((before, after))
    detect(before, after, tile_size=args.tile_size)  # the process's first run: fresh pages, cold caches
    clock = Clock()
    restore = install(clock)
    try:
        for _ in range(max(1, args.repeat)):
            clock.clear()
            c0, t0 = time.process_time(), time.perf_counter()
            detect(before, after, tile_size=args.tile_size)
            report(clock, time.perf_counter() - t0, time.process_time() - c0)
    finally:
        restore()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
