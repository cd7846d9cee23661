"""The column-wise NUMBERS and sentences (tuban.analysis.tables) are the per-patch text, character for character."""

from __future__ import annotations

import json

import numpy as np
import shapely

from tuban.analysis import analyse
from tuban.analysis.explanations import explain_rule

from . import layouts as lay


def _stars(rng: np.random.Generator, cx: np.ndarray, cy: np.ndarray, r: np.ndarray, k: int) -> np.ndarray:
    n = len(cx)
    ang = (np.arange(k) + rng.uniform(-0.4, 0.4, (n, k))) * (2 * np.pi / k)
    rad = r[:, None] * rng.uniform(0.7, 1.3, (n, k))
    xy = np.stack([cx[:, None] + rad * np.cos(ang), cy[:, None] + rad * np.sin(ang)], axis=-1)
    return shapely.polygons(np.concatenate([xy, xy[:, :1]], axis=1))


def test_column_text_is_the_per_patch_text_on_a_random_round() -> None:
    rng = np.random.default_rng(5)
    n_s, n_p = 60, 600
    side = 8000.0
    sx, sy, sr = rng.uniform(0, side, n_s), rng.uniform(0, side, n_s), rng.uniform(100, 250, n_s)
    # scopes 50… host no patch: patches just outside them are R3 (site change)
    host = np.where(np.arange(n_p) < 40, 50 + np.arange(n_p) % 10, rng.integers(0, 50, n_p))
    ang, far = rng.uniform(0, 2 * np.pi, n_p), (rng.random(n_p) < 0.4) | (np.arange(n_p) < 40)
    dist = np.where(far, sr[host] + np.where(np.arange(n_p) < 40, rng.uniform(100, 400, n_p), rng.uniform(50, 900, n_p)), rng.uniform(0, 1, n_p) * sr[host])
    patches = _stars(rng, sx[host] + dist * np.cos(ang), sy[host] + dist * np.sin(ang), rng.uniform(15, 60, n_p), 10)
    previous = _stars(rng, rng.uniform(0, side, 300), rng.uniform(0, side, 300), rng.uniform(30, 120, 300), 8)
    res = analyse(
        lay.patches(list(patches)),
        lay.scopes(list(_stars(rng, sx, sy, sr, 12)), ids=[f"P{k % 45:02d}" for k in range(n_s)],
                   rp_num=[None if k % 7 == 0 else f"豫水保〔2024〕{k}号" for k in range(n_s)],
                   vec_type=["示意性范围" if k % 9 == 0 else "防治责任范围" for k in range(n_s)]),
        lay.divisions([lay.box(-1000, -1000, 4000, side + 1000), lay.box(4000, -1000, side + 1000, side + 1000)],
                      ["410821", "410822"]),
        lay.patches(list(previous), [f"Q{k}" for k in range(len(previous))]),
    )
    frame = res.to_geodataframe()
    ref = res.numbers()
    assert set(frame["RULE_ID"]) == {"R1", "R2", "R3", "R4", "R5"}
    for row, num in zip(frame.itertuples(), ref, strict=True):
        assert json.dumps(num, ensure_ascii=False) == row.NUMBERS
        assert explain_rule(row.RULE_ID, num, row.QDNM, "zh") == row.EXPLAIN_ZH
        assert explain_rule(row.RULE_ID, num, row.QDNM, "en") == row.EXPLAIN_EN
