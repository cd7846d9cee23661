"""Fused per-pixel kernels (融合内核) of the ``construction`` and ``rgb`` change methods (numba).

The numpy implementation in :mod:`tuban.raster.change` is the reference (and the fallback when numba is
missing or ``TUBAN_FUSED=0``); these kernels compute the same per-pixel pipeline in few passes over memory:

1. :func:`_cell_sums`: standardise both dates on the fly and sum the after − before difference and the
   valid pixels per background cell (rows accumulated in a row buffer, so the inner loop vectorises);
2. the background (cell means → 1/16-σ quantisation → 9×9-cell median → horizontal linear interpolation)
   runs on the small cell grid, exactly as the reference: the medians of the rows the score reads
   (:func:`_median_rows_py`, OpenCV's ``medianBlur`` row for row), the interpolation with OpenCV;
3. :func:`_rows`: per output row, standardisation, the vertical half of the bilinear background,
   the 3×3 min/max of both dates (ring buffer of three standardised rows; vertical then horizontal, so
   only the z rows stream through the cache), the misregistration-tolerant
   magnitude, NDVI/VARI, brightening, BSI gain, and either the raw components or the gated score.

Compiled with ``cache=True`` (next to the sources, or in numba's user cache); where neither location is
writable (read-only install) the kernels are compiled in memory once per process instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tuban import jit

__all__ = ["FusedLayout", "available", "background", "bilinear", "cloud_candidates", "combine", "components", "piece_sums",
           "prune_bound", "shadow_candidates", "valid_f32", "valid_u16", "warm",
           "water"]

_EPS = np.float32(1e-6)


@dataclass(frozen=True)
class FusedLayout:
    """Where the bands a method needs sit in its stack (indices into ``roles``; -1: absent).

    ``kind``: 0 = construction (NDVI drop, BSI gain when ``swir1`` ≥ 0), 1 = rgb (VARI drop);
    ``vis``: the bands averaged for brightening, in the reference's summation order.
    """

    kind: int
    vis: tuple[int, ...]
    nir: int = -1
    red: int = -1
    green: int = -1
    blue: int = -1
    swir1: int = -1

    @property
    def n_components(self) -> int:
        return 4 if self.kind == 0 and self.swir1 >= 0 else 3

    @property
    def names(self) -> tuple[str, ...]:
        return ("mag", "veg_loss", "bright", "soil_gain")[: self.n_components]

    def index_array(self) -> np.ndarray:
        return np.array([self.kind, self.nir, self.red, self.green, self.blue, self.swir1], np.int64)


# helpers called from the kernels: compiled into them (and cached with them)
_HELPERS = jit.Helpers(globals(), inline=("_nd", "_px", "_index_px", "_any_label", "_bg_rows"),
                       called=("_bilinear_row", "_prep_row", "_rows_box", "_cell_flags", "_extent_py", "_plan_boxes", "_hbg_rows"))


def available() -> bool:
    """True when the fused kernels can run (numba importable and ``TUBAN_FUSED`` not ``0``)."""
    return jit.available()


# --------------------------------------------------------------------------------------------- kernels
# Plain Python functions; compiled lazily by jit.Kernel. Inner loops run along rows (contiguous) so LLVM
# vectorises them; float32 arithmetic in the reference's order of operations.


def _px(v, s):
    """A pixel as float32 × the date's scale: uint16 DN → reflectance, exactly as the float32 reads did
    (float32 inputs come with scale 1, and x × 1 == x)."""
    return np.float32(v) * s


def _cell_sums_py(before, after, sc_b, sc_a, med_b, inv_b, med_a, inv_a, use, cell, pr, pc, sums, count, cells):
    """Per cell and band the sum of after − before (standardised) over the valid pixels, and their count;
    per cell (``cells``: cell rows × cell columns) Σ_b of the largest (after − before)² of a valid pixel
    (≥ the largest Σ_b of a pixel), for the score's bound (:func:`_cell_flags`)."""
    nb, h, w = before.shape
    nw = count.shape[1]
    acc = np.zeros(w, np.float32)
    cnt = np.zeros(w, np.float32)
    dmax = np.zeros(w, np.float32)
    zero = np.float32(0)
    cells[:] = 0
    for b in range(nb):
        mb, ib, ma, ia = med_b[b], inv_b[b], med_a[b], inv_a[b]
        for y0 in range(-pr, h, cell):
            cy = (y0 + pr) // cell
            acc[:] = 0
            dmax[:] = 0
            if b == 0:
                cnt[:] = 0
            for y in range(max(y0, 0), min(y0 + cell, h)):
                rb = before[b, y]
                ra = after[b, y]
                ru = use[y]
                for x in range(w):
                    za = (_px(rb[x], sc_b) - mb) * ib
                    zb = (_px(ra[x], sc_a) - ma) * ia
                    d = zb - za
                    dd = d if ru[x] else zero
                    acc[x] += dd
                    ad = abs(dd)
                    dmax[x] = ad if ad > dmax[x] else dmax[x]
                if b == 0:
                    for x in range(w):
                        cnt[x] += np.float32(1) if ru[x] else np.float32(0)
            for cx in range(nw):
                x0 = max(cx * cell - pc, 0)
                x1 = min((cx + 1) * cell - pc, w)
                s = 0.0
                dm = zero
                for x in range(x0, x1):
                    s += acc[x]
                    dm = dmax[x] if dmax[x] > dm else dm
                sums[b, cy, cx] = s
                cells[cy, cx] += dm * dm
                if b == 0:
                    n = 0.0
                    for x in range(x0, x1):
                        n += cnt[x]
                    count[cy, cx] = n


def _bg_rows(y, fy0, cell, nh):
    """The two background rows pixel row ``y`` interpolates between, and its weight on the second (float32,
    the order of operations :func:`_prep_row` has always used)."""
    fy = np.float32((y + fy0 + 0.5) * (1.0 / cell) - 0.5)
    sy = int(np.floor(fy))
    return min(max(sy, 0), nh - 1), min(max(sy + 1, 0), nh - 1), fy - np.float32(sy)


def _prep_row(before, after, sc_b, sc_a, med_b, inv_b, med_a, inv_a, hbg, rmap, y, fy0, fx0, cell, za, zn, s, x0,
              x1):
    """Standardised before (za) and normalised after (zn) of row ``y`` on columns ``x0 - 1 … x1`` (within
    the row). Loops run over views from index 0 (a loop index starting at a runtime value keeps numba's
    negative-index wrap-around and does not vectorise)."""
    nb, _h, w = before.shape
    xa = max(x0 - 1, 0)
    xb = min(x1 + 1, w)
    r0, r1, fy = _bg_rows(y, fy0, cell, rmap.shape[0])
    b1 = fy
    b0 = np.float32(1) - fy
    for b in range(nb):
        mb, ib, ma, ia = med_b[b], inv_b[b], med_a[b], inv_a[b]
        rb = before[b, y, xa:xb]
        ra = after[b, y, xa:xb]
        g0 = hbg[b, rmap[r0], xa + fx0 : xb + fx0]  # background row r at rmap[r], column x at x + fx0
        g1 = hbg[b, rmap[r1], xa + fx0 : xb + fx0]
        oa = za[s, b, xa:xb]
        on = zn[s, b, xa:xb]
        for x in range(xb - xa):
            oa[x] = (_px(rb[x], sc_b) - mb) * ib
            bg = g0[x] * b0 + g1[x] * b1
            on[x] = (_px(ra[x], sc_a) - ma) * ia - bg


def _nd(a, b):
    """Normalised difference, 0 where ``a + b`` is ~0 (as :func:`tuban.raster.indices.normalized_difference`)."""
    den = a + b
    ok = abs(den) > np.float32(1e-6)
    q = (a - b) / (den if ok else np.float32(1))
    return q if ok else np.float32(0)


def _rows_box(before, after, sc_b, sc_a, med_b, inv_b, med_a, inv_a, hbg, rmap, fy0, fx0, cell, use, vis, idx, score_mode,
              cmed, cinv, y0, y1, x0, x1, out, oy, ox):
    """Components (``score_mode`` 0: out is (n_comp, …)) or the gated score (1: out[0] is the score) on the
    box ``(y0, y1, x0, x1)`` of the block (the 3×3 neighbourhoods read around it), written to
    ``out[:, y - oy, x - ox]``."""
    nb, h, w = before.shape
    nx = x1 - x0  # the loops below run over views of the box's columns, from 0: with a loop index that
    # starts at a runtime x0, numba's negative-index wrap-around stays in the loop and nothing vectorises
    kind, i_nir, i_red, i_green, i_blue, i_swir = idx[0], idx[1], idx[2], idx[3], idx[4], idx[5]
    za = np.empty((3, nb, w), np.float32)
    zn = np.empty((3, nb, w), np.float32)
    vla = np.empty(w + 2, np.float32)
    vha = np.empty(w + 2, np.float32)
    vln = np.empty(w + 2, np.float32)
    vhn = np.empty(w + 2, np.float32)
    xa = max(x0 - 1, 0)
    xb = min(x1 + 1, w)
    mw = xb - xa
    dx = x0 - xa  # column x of the box sits at index x - x0 + dx + 1 of the padded buffers
    s1 = np.empty(w, np.float32)
    s2 = np.empty(w, np.float32)
    va = np.empty(w, np.float32)
    vn = np.empty(w, np.float32)
    veg = np.empty(w, np.float32)
    soil = np.empty(w, np.float32)
    nv = vis.shape[0]
    third = np.float32(nv)
    half = np.float32(0.5)
    zero = np.float32(0)
    one = np.float32(1)
    for y in range(max(y0 - 1, 0), y0 + 1):
        _prep_row(before, after, sc_b, sc_a, med_b, inv_b, med_a, inv_a, hbg, rmap, y, fy0, fx0, cell, za, zn,
                  y % 3, x0, x1)
    for y in range(y0, y1):
        if y + 1 < h:
            _prep_row(before, after, sc_b, sc_a, med_b, inv_b, med_a, inv_a, hbg, rmap, y + 1, fy0, fx0, cell, za, zn,
                      (y + 1) % 3, x0, x1)
        sm = max(y - 1, 0) % 3
        sc = y % 3
        sp = min(y + 1, h - 1) % 3
        s1[:] = 0
        s2[:] = 0
        for b in range(nb):
            # vertical 3-min/max of the three z rows on columns xa … xb - 1, stored from index 1 of row
            # buffers padded by one column each side (an edge column repeats itself: min(v0, v0, v1) is
            # min(v0, v1), the clamp of the block's edge), then the horizontal 3-min/max read from them
            a1, a2, a3 = za[sm, b, xa:xb], za[sc, b, xa:xb], za[sp, b, xa:xb]
            n1, n2, n3 = zn[sm, b, xa:xb], zn[sc, b, xa:xb], zn[sp, b, xa:xb]
            qla, qha, qln, qhn = vla[1 : 1 + mw], vha[1 : 1 + mw], vln[1 : 1 + mw], vhn[1 : 1 + mw]
            for j in range(mw):
                qla[j] = min(min(a1[j], a2[j]), a3[j])
                qha[j] = max(max(a1[j], a2[j]), a3[j])
                qln[j] = min(min(n1[j], n2[j]), n3[j])
                qhn[j] = max(max(n1[j], n2[j]), n3[j])
            if xa == 0:
                vla[0], vha[0], vln[0], vhn[0] = vla[1], vha[1], vln[1], vhn[1]
            if xb == w:
                vla[mw + 1], vha[mw + 1], vln[mw + 1], vhn[mw + 1] = vla[mw], vha[mw], vln[mw], vhn[mw]
            a = za[sc, b, x0:x1]
            n = zn[sc, b, x0:x1]
            l1, l2, l3 = vln[dx : dx + nx], vln[dx + 1 : dx + 1 + nx], vln[dx + 2 : dx + 2 + nx]
            h1, h2, h3 = vhn[dx : dx + nx], vhn[dx + 1 : dx + 1 + nx], vhn[dx + 2 : dx + 2 + nx]
            m1, m2, m3 = vla[dx : dx + nx], vla[dx + 1 : dx + 1 + nx], vla[dx + 2 : dx + 2 + nx]
            k1, k2, k3 = vha[dx : dx + nx], vha[dx + 1 : dx + 1 + nx], vha[dx + 2 : dx + 2 + nx]
            for x in range(nx):
                # before's value against the range of the normalised after-date's 3×3 neighbourhood
                d = min(min(l1[x], l2[x]), l3[x]) - a[x]
                e = a[x] - max(max(h1[x], h2[x]), h3[x])
                d = max(d, e)
                d = d if d > zero else zero
                s1[x] += d * d
                # and the other way round
                d = min(min(m1[x], m2[x]), m3[x]) - n[x]
                e = n[x] - max(max(k1[x], k2[x]), k3[x])
                d = max(d, e)
                d = d if d > zero else zero
                s2[x] += d * d
        ru = use[y, x0:x1]
        # brightening of the visible bands (normalised after vs before), summed in the reference's order
        va[:nx] = za[sc, vis[0], x0:x1]
        vn[:nx] = zn[sc, vis[0], x0:x1]
        for j in range(1, nv):
            pa = za[sc, vis[j], x0:x1]
            pn = zn[sc, vis[j], x0:x1]
            for x in range(nx):
                va[x] += pa[x]
                vn[x] += pn[x]
        # one contiguous row per band (a 2-D row view has a runtime stride and does not vectorise);
        # absent bands (index -1) give some row, never read
        bn, br, bgr, bbl = before[i_nir, y, x0:x1], before[i_red, y, x0:x1], before[i_green, y, x0:x1], \
            before[i_blue, y, x0:x1]
        an, ar, agr, abl = after[i_nir, y, x0:x1], after[i_red, y, x0:x1], after[i_green, y, x0:x1], \
            after[i_blue, y, x0:x1]
        bsw, asw = before[i_swir, y, x0:x1], after[i_swir, y, x0:x1]
        if kind == 0:  # NDVI drop
            for x in range(nx):
                veg[x] = _nd(_px(bn[x], sc_b), _px(br[x], sc_b)) - _nd(_px(an[x], sc_a), _px(ar[x], sc_a))
        else:  # VARI drop
            for x in range(nx):
                bg_, br_, bl_ = _px(bgr[x], sc_b), _px(br[x], sc_b), _px(bbl[x], sc_b)
                ag_, ar_, al_ = _px(agr[x], sc_a), _px(ar[x], sc_a), _px(abl[x], sc_a)
                gb = _nd(bg_, br_) - half * _nd(bl_, bg_)
                ga = _nd(ag_, ar_) - half * _nd(al_, ag_)
                veg[x] = gb - ga
        if i_swir >= 0:  # BSI gain
            for x in range(nx):
                soil[x] = _nd(_px(asw[x], sc_a) + _px(ar[x], sc_a), _px(an[x], sc_a) + _px(abl[x], sc_a)) - _nd(
                    _px(bsw[x], sc_b) + _px(br[x], sc_b), _px(bn[x], sc_b) + _px(bbl[x], sc_b))
        ro, co = y - oy, x0 - ox
        if score_mode == 0:
            o0, o1, o2 = out[0, ro, co : co + nx], out[1, ro, co : co + nx], out[2, ro, co : co + nx]
            for x in range(nx):
                ok = ru[x]
                o0[x] = np.sqrt(max(s1[x], s2[x])) if ok else zero
                o1[x] = veg[x] if ok else zero
                o2[x] = (vn[x] / third - va[x] / third) if ok else zero
            if i_swir >= 0:
                o3 = out[3, ro, co : co + nx]
                for x in range(nx):
                    o3[x] = soil[x] if ru[x] else zero
        else:
            o0 = out[0, ro, co : co + nx]
            m0, m1, m2, m3 = cmed[0], cmed[1], cmed[2], cmed[-1]
            c0, c1, c2, c3 = cinv[0], cinv[1], cinv[2], cinv[-1]
            if i_swir < 0:
                for x in range(nx):
                    soil[x] = veg[x]  # max(d, d) == d: no BSI term
                m3, c3 = m1, c1
            for x in range(nx):
                m = (np.sqrt(max(s1[x], s2[x])) - m0) * c0
                direction = max((veg[x] - m1) * c1, (vn[x] / third - va[x] / third - m2) * c2)
                direction = max(direction, (soil[x] - m3) * c3)
                g = min(max(direction, zero), one) * max(m, zero)
                o0[x] = g if ru[x] else zero


def _cell_flags(cells, gmax, nb, zext, pr, pc, cell, y0, y1, x0, x1, bound, bh, bw, flags):
    """Flag the ``bh`` × ``bw`` blocks of the box ``(y0, y1, x0, x1)`` that meet a background cell holding a
    valid pixel whose gated score could exceed the threshold; returns how many.

    In :func:`_rows_box` a valid pixel's sums of squares are at most Σ_b e_b², e_b = |zn − za| at the
    pixel itself (the distance of one date to the range of the other's 3×3 neighbourhood, which holds
    the centre). By the triangle inequality over the bands, sqrt(Σ_b e_b²) ≤ |d| + |bg| (d = zb − za,
    bg the pixel's background). ``cells`` bounds |d|² per cell (:func:`_cell_sums_py`), ``gmax`` |bg|
    (:func:`_background_extent`); float32 rounding is covered by a relative 1e-5 and 1e-5 × √bands ×
    (``zext`` + |bg|), orders of magnitude above it (``zext``: the largest |za| + |zb| the block's values
    can give, :func:`_z_extent`)."""
    root = np.sqrt(np.float64(nb))
    n = 0
    for cy in range(cells.shape[0]):
        ra, rb = max(cy * cell - pr, y0), min((cy + 1) * cell - pr, y1)
        if ra >= rb:
            continue
        for cx in range(cells.shape[1]):
            ca, cb = max(cx * cell - pc, x0), min((cx + 1) * cell - pc, x1)
            if ca >= cb:
                continue
            g = np.float64(gmax[cy, cx])
            e = (np.sqrt(np.float64(cells[cy, cx])) + g) * 1.00001 + 1e-5 * root * (zext + g)
            if not e * e <= bound:  # (NaN flags too)
                for i in range((ra - y0) // bh, (rb - 1 - y0) // bh + 1):
                    for j in range((ca - x0) // bw, (cb - 1 - x0) // bw + 1):
                        if flags[i, j] == 0:
                            flags[i, j] = 1
                            n += 1
    return n


def _plan_boxes(before, after, sc_b, sc_a, med_b, inv_b, med_a, inv_a, cells, gmax, zext, fy0, fx0, cell, box,
                bound, margin):
    """The boxes of the score box ``box`` (y0, y1, x0, x1) to compute, (n, 4) rows (y0, y1, x0, x1) relative
    to it, for :func:`_rows`: the blocks of 8 rows × 32 columns within ``margin`` px of a block flagged by
    :func:`_cell_flags`, in runs along rows (gaps of ≤ 4 blocks bridged: narrow boxes cost more per pixel
    than they save), each run merged with the identical runs of the block rows below it. The whole box (one
    row) when ``bound`` < 0 or the flags cover over 35 % of the blocks (textured real scenes, where only
    the 3×3 tolerance tells misregistration from change). Deterministic: the background and the score
    kernel plan the same boxes from the same inputs."""
    y0, y1, x0, x1 = box[0], box[1], box[2], box[3]
    nb = before.shape[0]
    bh, bw, gap = 8, 32, 4
    nby, nbx = (y1 - y0 + bh - 1) // bh, (x1 - x0 + bw - 1) // bw
    flags = np.zeros((nby, nbx), np.uint8)
    give_up = 0.35 * nby * nbx
    whole = bound < 0
    if not whole and zext < 0:  # float32 stacks: their extent is a pass over the pixels, not needed when the
        # flags without the rounding margin (a subset) already give up
        whole = _cell_flags(cells, gmax, nb, 0.0, fy0, fx0, cell, y0, y1, x0, x1, bound, bh, bw, flags) > give_up
        if not whole:
            zext = _extent_py(before, after, sc_b, sc_a, med_b, inv_b, med_a, inv_a)
            flags[:] = 0
    if not whole:
        whole = _cell_flags(cells, gmax, nb, zext, fy0, fx0, cell, y0, y1, x0, x1, bound, bh, bw, flags) > give_up
    if whole:
        all_of = np.empty((1, 4), np.int64)
        all_of[0, 0], all_of[0, 1], all_of[0, 2], all_of[0, 3] = 0, y1 - y0, 0, x1 - x0
        return all_of
    kr, kc = (margin + bh - 1) // bh, (margin + bw - 1) // bw
    act = np.zeros((nby, nbx), np.uint8)
    for i in range(nby):
        for j in range(nbx):
            if flags[i, j]:
                act[max(i - kr, 0) : min(i + kr + 1, nby), max(j - kc, 0) : min(j + kc + 1, nbx)] = 1
    # the runs of active blocks of each block row (gaps of ≤ gap blocks bridged): (start, end) in blocks
    runs = np.zeros((nby, nbx, 2), np.int64)
    nrun = np.zeros(nby, np.int64)
    for i in range(nby):
        j = 0
        while j < nbx:
            if not act[i, j]:
                j += 1
                continue
            j1 = j + 1
            while j1 < nbx:
                if act[i, j1]:
                    j1 += 1
                    continue
                nxt = j1
                while nxt < nbx and nxt - j1 <= gap and not act[i, nxt]:
                    nxt += 1
                if nxt < nbx and nxt - j1 <= gap and act[i, nxt]:
                    j1 = nxt
                else:
                    break
            runs[i, nrun[i], 0] = j
            runs[i, nrun[i], 1] = j1
            nrun[i] += 1
            j = j1
    # each run over the block rows below that have the same run (the box's first and last rows are
    # prepared again for the 3×3 neighbourhoods: a box per block row would prepare 10 rows for 8)
    done = np.empty((max(nrun.sum(), 1), 4), np.int64)
    n = 0
    for i in range(nby):
        for r in range(nrun[i]):
            j, j1 = runs[i, r, 0], runs[i, r, 1]
            if j < 0:
                continue  # merged into a box above
            i1 = i + 1
            while i1 < nby:
                found = -1
                for q in range(nrun[i1]):
                    if runs[i1, q, 0] == j and runs[i1, q, 1] == j1:
                        found = q
                if found < 0:
                    break
                runs[i1, found, 0] = -1
                i1 += 1
            done[n, 0], done[n, 1] = i * bh, min(i1 * bh, y1 - y0)
            done[n, 2], done[n, 3] = j * bw, min(j1 * bw, x1 - x0)
            n += 1
    return done[:n]


def _hbg_rows(boxes, y0, fy0, cell, nh, h, need):
    """Mark in ``need`` the background rows :func:`_rows_box` reads for ``boxes`` (relative to row ``y0``):
    each pixel row's two rows, for the box's rows and one more above and below (the 3×3 neighbourhoods)."""
    for k in range(boxes.shape[0]):  # the rows grow with y: from the first row's first to the last row's second
        ya, yb = max(y0 + boxes[k, 0] - 1, 0), min(y0 + boxes[k, 1] + 1, h)
        r0 = _bg_rows(ya, fy0, cell, nh)[0]
        r1 = _bg_rows(yb - 1, fy0, cell, nh)[1]
        for r in range(r0, r1 + 1):
            need[r] = 1


def _rows(before, after, sc_b, sc_a, med_b, inv_b, med_a, inv_a, hbg, cells, gmax, rmap, zext, fy0, fx0, cell,
          use, vis, idx, score_mode, cmed, cinv, box, out, bound, margin):
    """:func:`_rows_box` on ``box`` ``(y0, y1, x0, x1)`` of the block into ``out`` (…, y1 - y0, x1 - x0);
    returns the boxes computed, (n, 4) rows ``(y0, y1, x0, x1)`` of ``out`` (the whole when nothing was pruned).

    With the gated score (``score_mode`` 1) and ``bound`` ≥ 0, only the boxes :func:`_plan_boxes` plans are
    computed. Every pixel whose score exceeds the threshold the bound was derived from lies in a flagged
    block, so (``margin`` covering the smoothing and the morphology) the cleaned mask and the smoothed score
    on it are those of the whole box, bit for bit. ``rmap``: where each background row is in ``hbg`` (-1:
    not computed; all are, or those the same plan reads: :func:`_hbg_rows`)."""
    y0, y1, x0, x1 = box[0], box[1], box[2], box[3]
    bh, bw = 8, 32
    done = _plan_boxes(before, after, sc_b, sc_a, med_b, inv_b, med_a, inv_a, cells, gmax, zext, fy0, fx0, cell, box,
                       bound if score_mode == 1 else -1.0, margin)
    got = np.zeros(rmap.shape[0], np.uint8)
    _hbg_rows(done, y0, fy0, cell, rmap.shape[0], before.shape[1], got)
    for r in range(got.shape[0]):
        if got[r] and rmap[r] < 0:
            raise ValueError("the background rows given were computed for other boxes")
    if done.shape[0] == 1 and done[0, 1] - done[0, 0] == y1 - y0 and done[0, 3] - done[0, 2] == x1 - x0:
        _rows_box(before, after, sc_b, sc_a, med_b, inv_b, med_a, inv_a, hbg, rmap, fy0, fx0, cell, use, vis, idx,
                  score_mode, cmed, cinv, y0, y1, x0, x1, out, y0, x0)
        return done
    # the score is 0 on the blocks next to the boxes (a smoothing of the computed boxes reads up to one
    # block around them, :func:`tuban.detect.kernel._smooth_boxes`) and not written further away
    nby, nbx = (y1 - y0 + bh - 1) // bh, (x1 - x0 + bw - 1) // bw
    cmp = np.zeros((nby, nbx), np.uint8)
    for k in range(done.shape[0]):
        cmp[done[k, 0] // bh : (done[k, 1] + bh - 1) // bh, done[k, 2] // bw : (done[k, 3] + bw - 1) // bw] = 1
    o = out[0]
    for i in range(nby):
        for j in range(nbx):
            if cmp[i, j]:
                continue
            near = False
            for ii in range(max(i - 1, 0), min(i + 2, nby)):
                for jj in range(max(j - 1, 0), min(j + 2, nbx)):
                    near = near or cmp[ii, jj] == 1
            if near:
                o[i * bh : min((i + 1) * bh, y1 - y0), j * bw : min((j + 1) * bw, x1 - x0)] = 0
    for k in range(done.shape[0]):
        _rows_box(before, after, sc_b, sc_a, med_b, inv_b, med_a, inv_a, hbg, rmap, fy0, fx0, cell, use, vis, idx, 1,
                  cmed, cinv, y0 + done[k, 0], y0 + done[k, 1], x0 + done[k, 2], x0 + done[k, 3], out, y0, x0)
    return done


def _median_rows_py(q, size, rows, out):
    """``out[i, x]``: the median of the ``size`` × ``size`` window of ``q`` (uint8) around (``rows[i]``, x),
    edges replicated: ``cv2.medianBlur(q, size)[rows]``, computed on those rows alone.

    Along each row a histogram of the window slides (one column of ``size`` values leaves, one enters) and
    the median moves from the previous one by the count of values under it (Huang's method). OpenCV had to
    be given each run of rows with ``size // 2`` rows of context each side, all computed: the background's
    runs are short (half the rows computed were context), and it took ~1.5× longer per row besides."""
    nh, nw = q.shape
    half = size // 2
    rank = (size * size) // 2  # values under the median
    hist = np.zeros(256, np.int64)
    ri = np.empty(size, np.int64)
    for i in range(rows.shape[0]):
        r = rows[i]
        hist[:] = 0
        for k in range(size):
            ri[k] = min(max(r + k - half, 0), nh - 1)
        for k in range(size):
            row = q[ri[k]]
            for dx in range(-half, half + 1):
                hist[row[min(max(dx, 0), nw - 1)]] += 1
        m = 0
        below = 0
        while below + hist[m] <= rank:
            below += hist[m]
            m += 1
        o = out[i]
        o[0] = m
        for x in range(1, nw):
            xo = max(x - half - 1, 0)  # the column leaving the window
            xn = min(x + half, nw - 1)  # and the one entering
            for k in range(size):
                row = q[ri[k]]
                vo = row[xo]
                vn = row[xn]
                hist[vo] -= 1
                hist[vn] += 1
                below += (1 if vn < m else 0) - (1 if vo < m else 0)
            while below > rank:
                m -= 1
                below -= hist[m]
            while below + hist[m] <= rank:
                below += hist[m]
                m += 1
            o[x] = m


def _combine_py(comps, cmed, cinv, use, out):
    nc, h, w = comps.shape
    zero = np.float32(0)
    one = np.float32(1)
    for y in range(h):
        for x in range(w):
            if not use[y, x]:
                out[y, x] = zero
                continue
            m = (comps[0, y, x] - cmed[0]) * cinv[0]
            direction = (comps[1, y, x] - cmed[1]) * cinv[1]
            for k in range(2, nc):
                direction = max(direction, (comps[k, y, x] - cmed[k]) * cinv[k])
            g = min(max(direction, zero), one)
            out[y, x] = g * max(m, zero)


def _extent_py(before, after, sc_b, sc_a, med_b, inv_b, med_a, inv_a):
    """The largest |za| + |zb| of float32 stacks, over bands (NaN, the invalid pixels, skipped; 16
    running maxima, so the loop vectorises)."""
    nb = before.shape[0]
    lanes = np.zeros(16, np.float32)
    out = 0.0
    for b in range(nb):
        ext = 0.0
        for k in range(2):
            v = before[b].reshape(-1) if k == 0 else after[b].reshape(-1)
            lanes[:] = 0
            n = v.shape[0] // 16 * 16
            for i in range(0, n, 16):
                for j in range(16):
                    a = abs(v[i + j])
                    lanes[j] = a if a > lanes[j] else lanes[j]
            top = np.float64(0)
            for j in range(16):
                top = max(top, np.float64(lanes[j]))
            for i in range(n, v.shape[0]):
                a = np.float64(abs(v[i]))
                top = a if a > top else top
            sc, m, iv = (sc_b, med_b[b], inv_b[b]) if k == 0 else (sc_a, med_a[b], inv_a[b])
            ext += (top * np.float64(sc) + abs(np.float64(m))) * abs(np.float64(iv))
        out = max(out, ext)
    return out


def _threshold_py(score, thr, use, out, boxes):
    """``out = (score > thr) & use`` on ``boxes`` (rows y0, y1, x0, x1), 0 elsewhere."""
    h, w = score.shape
    whole = boxes.shape[0] == 1 and boxes[0, 0] == 0 and boxes[0, 1] == h and boxes[0, 2] == 0 and boxes[0, 3] == w
    if not whole:  # (the whole box writes every pixel itself)
        for y in range(h):
            o = out[y]
            for x in range(w):
                o[x] = 0
    for k in range(boxes.shape[0]):
        for y in range(boxes[k, 0], boxes[k, 1]):
            x0, x1 = boxes[k, 2], boxes[k, 3]
            s, u, o = score[y, x0:x1], use[y, x0:x1], out[y, x0:x1]
            for x in range(x1 - x0):
                o[x] = 1 if (s[x] > thr and u[x]) else 0


def _u16_py(arr, out, slots, valid, nodata, has_nodata, max_value, check_max, scale):
    nb, h, w = arr.shape
    bad = np.empty(w, np.uint8)
    for y in range(h):
        bad[:] = 0
        for k in range(nb):
            src = arr[k, y]
            dst = out[slots[k], y]
            for x in range(w):
                v = src[x]
                dst[x] = np.float32(v) * scale
                nd = has_nodata and v == nodata
                sat = check_max and v >= max_value
                bad[x] |= np.uint8(1) if (nd or sat) else np.uint8(0)
        ok = valid[y]
        for x in range(w):
            ok[x] = ok[x] and bad[x] == 0


def _valid_py(arr, valid, nodata, has_nodata, max_value, check_max, check_finite):
    """Clear ``valid`` where a band is ``nodata``, at ``max_value`` or above (``check_max``: saturated DN) or
    not finite (``check_finite``: float bands; NaN and ±inf give v − v = NaN, which is not 0)."""
    # branch-free inner loops (the flags are tested once per row and band): they vectorise; a per-pixel
    # ``ok and not (… or …)`` did not (2.2 ms for a 4-band 1142² window, against ~0.4)
    nb, h, w = arr.shape
    bad = np.empty(w, np.uint8)
    for y in range(h):
        bad[:] = 0
        for k in range(nb):
            src = arr[k, y]
            if has_nodata:
                for x in range(w):
                    bad[x] |= np.uint8(src[x] == nodata)
            if check_max:
                for x in range(w):
                    bad[x] |= np.uint8(src[x] >= max_value)
            if check_finite:
                for x in range(w):
                    bad[x] |= np.uint8(src[x] - src[x] != 0)
        ok = valid[y]
        for x in range(w):
            ok[x] = ok[x] & (bad[x] == 0)


def _cloud_cand_py(data, ib, ig, ir, sc, bright, white_max, out):
    """The spectral cloud test of :func:`tuban.raster.masks.cloud_mask` per pixel, in its float32 order."""
    h, w = data.shape[1], data.shape[2]
    three = np.float32(3)
    tiny = np.float32(1e-6)
    half = np.float32(0.5)
    hot = np.float32(0.08)
    zero = np.float32(0)
    for y in range(h):
        rb, rg, rr, o = data[ib, y], data[ig, y], data[ir, y], out[y]
        for x in range(w):
            b, g, r = _px(rb[x], sc), _px(rg[x], sc), _px(rr[x], sc)
            vis = (b + g + r) / three
            safe = max(vis, tiny)
            white = (abs(b - vis) + abs(g - vis) + abs(r - vis)) / safe
            ok = (vis > bright) & (white < white_max) & ((b - half * r) - hot > zero)
            o[x] = 1 if ok else 0


def _shadow_cand_py(before, after, nir_b, nir_a, swir_b, swir_a, sc_b, sc_a, dark, out_a, out_b):
    """The shadow candidates of :func:`tuban.raster.masks.shadow_mask` (``swir_b`` -1: NIR only)."""
    h, w = before.shape[1], before.shape[2]
    half = np.float32(0.5)
    six = np.float32(0.6)
    for y in range(h):
        nb_, na_, sb_, sa_ = before[nir_b, y], after[nir_a, y], before[swir_b, y], after[swir_a, y]
        oa, ob = out_a[y], out_b[y]
        for x in range(w):
            nb, na = _px(nb_[x], sc_b), _px(na_[x], sc_a)
            ca = (na < dark) & (na < half * nb)
            cb = (nb < dark) & (nb < half * na)
            if swir_b >= 0:
                swb, swa = _px(sb_[x], sc_b), _px(sa_[x], sc_a)
                ca = ca & (swa < six * swb)
                cb = cb & (swb < six * swa)
            oa[x] = 1 if ca else 0
            ob[x] = 1 if cb else 0


def _water_py(data, ig, inir, isw, sc, mndwi, out):
    """Open water of :func:`tuban.raster.masks.water_mask` per pixel, in its float32 order: NDWI > 0 and, with
    SWIR (``isw`` ≥ 0), MNDWI > ``mndwi``."""
    h, w = data.shape[1], data.shape[2]
    zero = np.float32(0)
    for y in range(h):
        rg, rn, rs, o = data[ig, y], data[inir, y], data[max(isw, 0), y], out[y]
        for x in range(w):
            g = _px(rg[x], sc)
            ok = _nd(g, _px(rn[x], sc)) > zero
            if isw >= 0:
                ok = ok & (_nd(g, _px(rs[x], sc)) > mndwi)
            o[x] = ok


def _bilinear_row(row, ic, wc, cols_weighted, out, wide):
    """One source row interpolated along its columns into ``out`` (float64 or float32, ``wide``): ``a·(1 − w)
    + b·w`` of columns ``ic[x]`` and ``ic[x] + 1``; ``cols_weighted`` false: every weight is 0, the pixels as
    they are."""
    if not cols_weighted:
        for x in range(out.shape[0]):
            out[x] = row[ic[x]]
    elif wide:
        for x in range(out.shape[0]):
            c, fx = ic[x], wc[x]
            out[x] = np.float64(row[c]) * (1.0 - fx) + np.float64(row[c + 1]) * fx
    else:
        for x in range(out.shape[0]):
            c, fx = ic[x], wc[x]
            out[x] = np.float32(row[c]) * np.float32(1.0 - fx) + np.float32(row[c + 1]) * np.float32(fx)


def _bilinear_py(src, ir, wr, ic, wc, wide, integer, out, ha, hb):
    """``out[b, y, x]``: ``src`` (bands, rows, columns; its edges already repeated) between rows ``ir[y]``,
    ``ir[y] + 1`` and columns ``ic[x]``, ``ic[x] + 1``, the second ones weighing ``wr[y]`` and ``wc[x]``:
    columns first (each source row once, into ``ha`` / ``hb``), then rows, each ``a·(1 − w) + b·w`` (a weight
    of 0 takes the pixel as it is), in float64 (``wide``: ``ha``, ``hb`` float64) or float32, as
    :func:`tuban.raster.grid._along` computes them; ``integer``: rounded half up."""
    nb, h, w = out.shape
    cols_weighted = False
    for x in range(w):
        if wc[x] != 0.0:
            cols_weighted = True
    half = ha.dtype.type(0.5)
    for b in range(nb):
        ra, rb = -1, -1  # the source rows ha and hb hold
        for y in range(h):
            r, fy = ir[y], wr[y]
            if r != ra:
                if r == rb:  # the row below becomes the row above
                    ha, hb = hb, ha
                    ra, rb = rb, -1
                else:
                    _bilinear_row(src[b, r], ic, wc, cols_weighted, ha, wide)
                    ra = r
            o = out[b, y]
            if fy == 0.0:
                for x in range(w):
                    o[x] = np.floor(ha[x] + half) if integer else ha[x]
                continue
            if rb != r + 1:
                _bilinear_row(src[b, r + 1], ic, wc, cols_weighted, hb, wide)
                rb = r + 1
            gy, my = ha.dtype.type(fy), ha.dtype.type(1.0 - fy)
            for x in range(w):
                v = ha[x] * my + hb[x] * gy
                o[x] = np.floor(v + half) if integer else v


def _index_px(data, bands, sc, y, x, kind):
    """NDVI (``kind`` 0; ``bands`` nir, red) or VARI (1; green, red, blue) of one pixel, in the float32
    order of :data:`tuban.raster.indices.INDICES`."""
    if kind == 0:
        return _nd(_px(data[bands[0], y, x], sc), _px(data[bands[1], y, x], sc))
    g, r, b = _px(data[bands[0], y, x], sc), _px(data[bands[1], y, x], sc), _px(data[bands[2], y, x], sc)
    return _nd(g, r) - np.float32(0.5) * _nd(b, g)


def _any_label(v, x0, x1):
    """Whether labels ``v[x0:x1]`` (≥ 0) hold one: an OR of the stretch, which vectorises."""
    a = 0
    for x in range(x0, x1):
        a |= v[x]
    return a != 0


def _piece_sums_py(lab, score, unobs, before, after, bands_b, bands_a, sc_b, sc_a, kind, r_off, c_off, wins, sums,
                   vbuf):
    """Per label: pixels, score, index before / after, and over the
    label grown by one pixel (3×3 maximum of the labels) its unobservable and all pixels; windows ``wins``
    (r0, r1, c0, c1) hold every labelled pixel and lie ≥ 3 rows apart; ``unobs`` and the stacks are the
    block's (the core at ``r_off``, ``c_off``). Sums in float64, pixels taken in
    row-major order of each window (as ``np.bincount`` over the concatenated windows)."""
    h, w = lab.shape
    hbuf = np.empty(w, lab.dtype)
    for k in range(wins.shape[0]):
        r0, r1, c0, c1 = wins[k, 0], wins[k, 1], wins[k, 2], wins[k, 3]
        for y in range(r0, r1):
            row = lab[y]
            for x16 in range(c0, c1, 16):  # 16 pixels at a time: most hold no label
                xe = min(x16 + 16, c1)
                if not _any_label(row, x16, xe):
                    continue
                for x in range(x16, xe):
                    lb = row[x]
                    if lb > 0:
                        sums[lb, 0] += 1.0
                        sums[lb, 1] += np.float64(score[y, x])
                        sums[lb, 2] += np.float64(_index_px(before, bands_b, sc_b, y + r_off, x + c_off, kind))
                        sums[lb, 3] += np.float64(_index_px(after, bands_a, sc_a, y + r_off, x + c_off, kind))
        g0, g1, h0, h1 = max(r0 - 1, 0), min(r1 + 1, h), max(c0 - 1, 0), min(c1 + 1, w)
        n = h1 - h0
        for y in range(g0, g1):
            # 3×3 maximum of the labels: vertical (rows clamped to the window grown by one), then horizontal
            ra, rm, rb = lab[max(y - 1, g0), h0:h1], lab[y, h0:h1], lab[min(y + 1, g1 - 1), h0:h1]
            v = vbuf[:n]
            for x in range(n):
                v[x] = max(max(ra[x], rm[x]), rb[x])
            g = hbuf[:n]
            g[0] = max(v[0], v[min(1, n - 1)])
            g[n - 1] = max(v[max(n - 2, 0)], v[n - 1])
            for x in range(1, n - 1):
                g[x] = max(max(v[x - 1], v[x]), v[x + 1])
            ru = unobs[y + r_off, h0 + c_off : h1 + c_off]
            for x16 in range(0, n, 16):
                xe = min(x16 + 16, n)
                if not _any_label(g, x16, xe):
                    continue
                for x in range(x16, xe):
                    gl = g[x]
                    if gl > 0:
                        sums[gl, 5] += 1.0
                        sums[gl, 4] += 1.0 if ru[x] else 0.0


_cell_sums = jit.Kernel(_cell_sums_py, _HELPERS)
_piece_sums_k = jit.Kernel(_piece_sums_py, _HELPERS)
_rows_k = jit.Kernel(_rows, _HELPERS)
_plan_boxes_k = jit.Kernel(_plan_boxes, _HELPERS)
_hbg_rows_k = jit.Kernel(_hbg_rows, _HELPERS)
_median_rows_k = jit.Kernel(_median_rows_py, _HELPERS)
_combine_k = jit.Kernel(_combine_py, _HELPERS)
_threshold_k = jit.Kernel(_threshold_py, _HELPERS)
_u16_k = jit.Kernel(_u16_py, _HELPERS)
_valid_k = jit.Kernel(_valid_py, _HELPERS)
_cloud_cand_k = jit.Kernel(_cloud_cand_py, _HELPERS)
_shadow_cand_k = jit.Kernel(_shadow_cand_py, _HELPERS)
_water_k = jit.Kernel(_water_py, _HELPERS)
_bilinear_k = jit.Kernel(_bilinear_py, _HELPERS)


# --------------------------------------------------------------------------------------------- wrappers


def _f32(v) -> np.ndarray:
    return np.ascontiguousarray(v, np.float32)


def _band_data(v) -> np.ndarray:
    """uint16 DN stay uint16 (scaled inside the kernels: half the memory traffic); the rest as float32."""
    v = np.asarray(v)
    return np.ascontiguousarray(v) if v.dtype == np.uint16 else _f32(v)


def _background_extent(q: np.ndarray, size: int, q_step: float, q_lim: float, buffers=None) -> np.ndarray:
    """Per cell, a bound on the length over bands of the background of any pixel in it (float64): a 9×9
    median lies between its window's extremes, and a pixel's background interpolates the cells around its
    own (3×3), so the extremes over (size + 2)² cells (OpenCV's dilation and erosion, replicated borders
    as the median's)."""
    import cv2

    from tuban.raster.grid import give_back, pooled_empty

    k = np.ones((size + 2, size + 2), np.uint8)
    acc = np.zeros(q.shape[1:], np.float64)
    # in place: the same numbers, no array per step (the two working arrays from ``buffers``' cells)
    hi, lo = (pooled_empty(acc.shape, np.float64, buffers, "cells") for _ in range(2))
    for b in range(q.shape[0]):
        for v, op in ((hi, cv2.dilate), (lo, cv2.erode)):
            np.copyto(v, op(q[b], k, borderType=cv2.BORDER_REPLICATE))
            v /= q_step
            v -= q_lim
            np.abs(v, out=v)
        np.maximum(hi, lo, out=hi)
        hi *= hi
        acc += hi
    give_back(buffers, hi, lo)
    return np.sqrt(acc, out=acc)


def background_rows(before: np.ndarray, after: np.ndarray, med_b: np.ndarray, inv_b: np.ndarray,
                    med_a: np.ndarray, inv_a: np.ndarray, use: np.ndarray, *, cell: int, row: int,
                    col: int, size: int, q_step: float, q_lim: float, scale_b: float = 1.0,
                    scale_a: float = 1.0, buffers=None,
                    plan: tuple[float, int, tuple[int, ...]] | None = None) -> tuple[np.ndarray, ...]:
    """The background of a block, for :func:`components`: ``(rows, cells, gmax, rmap)``.

    ``rows``: per band, the background cells linearly interpolated along rows, (bands, rows computed, cell
    columns × cell) float32, the block's column x at x + ``col % cell`` (``buffers``, a
    :class:`tuban.raster.grid.BufferPool`: where it goes); ``cells``: per cell a bound of Σ_b (after −
    before)² over its valid pixels; ``gmax``: per cell a bound of its pixels' background length
    (:func:`_background_extent`); ``rmap``: per cell row, its row in ``rows`` (-1: not computed).

    ``plan``: ``(bound, margin, box)`` of a pruned score (:func:`components`' ``prune``): only the rows its
    boxes read are computed (the 9×9 medians on those rows and 4 more each side, bit for bit those of the
    whole); ``None``: every row."""
    import cv2

    from tuban.raster.grid import give_back, pooled_empty

    nb, h, w = before.shape
    pr, pc = row % cell, col % cell
    nh, nw = -(-(h + pr) // cell), -(-(w + pc) // cell)
    # the cell sums and their means, a tile's transient arrays: from ``buffers``' cells (0.5–2.3 MB each,
    # mapped and faulted in afresh every tile otherwise)
    sums = pooled_empty((nb, nh, nw), np.float64, buffers, "cells")
    count = pooled_empty((nh, nw), np.float64, buffers, "cells")
    sums.fill(0)
    count.fill(0)
    cells = np.empty((nh, nw), np.float32)
    _cell_sums(before, after, np.float32(scale_b), np.float32(scale_a), med_b, inv_b, med_a, inv_a, use, cell, pr, pc,
               sums, count, cells)
    ok = count > 0.25 * cell * cell
    # the cells' means, quantised: in place, the same numbers (a tile's transient arrays, in the heap among
    # GDAL's cached blocks, left holes there)
    sums /= np.maximum(count, 1, out=count)
    sums[:, ~ok] = 0.0
    means = pooled_empty(sums.shape, np.float32, buffers, "cells")
    np.copyto(means, sums)
    give_back(buffers, sums, count)
    means += np.float32(q_lim)
    means *= np.float32(q_step)
    q = np.clip(np.rint(means, out=means), 0, 255, out=means).astype(np.uint8)
    give_back(buffers, means)
    gmax = _background_extent(q, size, q_step, q_lim, buffers)
    need = np.ones(nh, np.uint8)
    if plan is not None and plan[0] >= 0:
        sb, sa = np.float32(scale_b), np.float32(scale_a)
        boxes = _plan_boxes_k(before, after, sb, sa, med_b, inv_b, med_a, inv_a, cells, gmax,
                              _z_extent(before, after, sb, sa, med_b, inv_b, med_a, inv_a), pr, pc, cell,
                              np.asarray(plan[2], np.int64), np.float32(plan[0]), int(plan[1]))
        need[:] = 0
        _hbg_rows_k(boxes, int(plan[2][0]), pr, cell, nh, h, need)
    rows = np.flatnonzero(need)
    rmap = np.full(nh, -1, np.int64)
    rmap[rows] = np.arange(rows.size)
    out = pooled_empty((nb, max(rows.size, 1), nw * cell), np.float32, buffers, "background")
    if rows.size == 0:
        return out, cells, gmax, rmap
    med = np.empty((rows.size, nw), np.uint8)
    rows64 = rows.astype(np.int64, copy=False)
    for b in range(nb):
        _median_rows_k(q[b], size, rows64, med)  # cv2.medianBlur(q[b], size)[rows]
        bg = med.astype(np.float32)
        bg *= np.float32(1 / q_step)
        bg -= np.float32(q_lim)
        # one interpolation of all the rows (row by row: the height is kept, so row i is row i's alone)
        cv2.resize(bg, (nw * cell, rows.size), dst=out[b], interpolation=cv2.INTER_LINEAR)
    return out, cells, gmax, rmap


def _inputs(before, after, band_b, band_a, use, scale_b: float, scale_a: float) -> tuple:
    """The kernels' arguments: stacks as uint16 or float32 (mixed pairs as float32), scales, band statistics
    as float32, ``use`` as contiguous booleans."""
    before, after = _band_data(before), _band_data(after)
    if before.dtype != after.dtype:  # one specialisation per dtype pair is enough: mixed pairs as float32
        before, after = _f32(before * np.float32(scale_b)) if before.dtype == np.uint16 else before, \
            _f32(after * np.float32(scale_a)) if after.dtype == np.uint16 else after
        scale_b = scale_a = 1.0
    med_b, inv_b, med_a, inv_a = (_f32(v) for v in (*band_b, *band_a))
    return (before, after, np.float32(scale_b), np.float32(scale_a), med_b, inv_b, med_a, inv_a,
            np.ascontiguousarray(use, np.bool_))


def background(before: np.ndarray, after: np.ndarray, band_b: tuple[np.ndarray, np.ndarray],
               band_a: tuple[np.ndarray, np.ndarray], use: np.ndarray, *, cell: int, row: int = 0, col: int = 0,
               size: int = 9, q_step: float = 16.0, q_lim: float = 8.0, scale_b: float = 1.0,
               scale_a: float = 1.0, buffers=None, comp_stats: tuple[np.ndarray, np.ndarray] | None = None,
               box: tuple[int, int, int, int] | None = None, prune: tuple[float, int] | None = None
               ) -> tuple[np.ndarray, ...]:
    """The background (:func:`background_rows`) :func:`components` needs for a block (arguments as there),
    computed apart (the rows into ``buffers`` when given). With ``prune`` (and ``comp_stats``, ``box``),
    only the rows a score pruned with the same arguments reads; that score must then be computed with
    them (another raises ``ValueError``)."""
    before, after, sb, sa, med_b, inv_b, med_a, inv_a, u = _inputs(before, after, band_b, band_a, use, scale_b,
                                                                   scale_a)
    return background_rows(before, after, med_b, inv_b, med_a, inv_a, u, cell=cell, row=row, col=col, size=size,
                           q_step=q_step, q_lim=q_lim, scale_b=float(sb), scale_a=float(sa), buffers=buffers,
                           plan=_plan(prune, comp_stats, box, before.shape[1:]))


def _plan(prune: tuple[float, int] | None, comp_stats: tuple[np.ndarray, np.ndarray] | None,
          box: tuple[int, int, int, int] | None, shape: tuple[int, ...]) -> tuple[float, int, tuple[int, ...]] | None:
    """``(bound, margin, box)`` of a pruned score (:func:`prune_bound`), ``None`` when it is not pruned."""
    if prune is None or comp_stats is None:
        return None
    cmed, cinv = _f32(comp_stats[0]), _f32(comp_stats[1])
    return (prune_bound(prune[0], float(cmed[0]), float(cinv[0])), int(prune[1]),
            tuple(box) if box is not None else (0, shape[0], 0, shape[1]))


def components(before: np.ndarray, after: np.ndarray, band_b: tuple[np.ndarray, np.ndarray],
               band_a: tuple[np.ndarray, np.ndarray], use: np.ndarray, layout: FusedLayout, *, cell: int,
               row: int = 0, col: int = 0, size: int = 9, q_step: float = 16.0, q_lim: float = 8.0,
               comp_stats: tuple[np.ndarray, np.ndarray] | None = None, scale_b: float = 1.0,
               scale_a: float = 1.0, box: tuple[int, int, int, int] | None = None,
               background: tuple[np.ndarray, ...] | None = None, out: np.ndarray | None = None,
               prune: tuple[float, int] | None = None, computed: list | None = None) -> np.ndarray:
    """The method's change components (n, h, w), or with ``comp_stats`` its gated score (h, w).

    Parameters
    ----------
    before, after
        raw stacks (bands, h, w) of the method's roles: float32, or uint16 DN (kept as such: the kernels
        multiply each pixel by ``scale_b`` / ``scale_a`` in float32, as the float32 reads did).
    band_b, band_a
        per band (median, 1 / MAD) of each date (scene-wide robust statistics).
    use
        observable pixels (bool, h × w); components and score are 0 elsewhere.
    layout
        where the bands sit (:class:`FusedLayout`).
    cell, row, col, size, q_step, q_lim
        background cells as in :func:`tuban.raster.change.local_offset`.
    comp_stats
        per component (median, 1 / MAD): return the gated score instead of the components.
    scale_b, scale_a
        reflectance scale of each date's DN (1 for float32 stacks, already scaled).
    box
        ``(y0, y1, x0, x1)``: compute only this part of the block (the result is (…, y1 - y0, x1 - x0) and
        equals that crop of the whole block's, bit for bit: the background cells still come from the whole
        block, the 3×3 neighbourhoods from around the box). ``None``: the whole block.
    background
        the block's background from :func:`background` with the same arguments (computed elsewhere, e.g.
        on the thread that assembled the block); ``None``: computed here.
    out
        with ``comp_stats``: the (h, w) float32 array the score is written to (C-contiguous); ``None``: a new one.
    prune
        with ``comp_stats``: ``(threshold, margin)``: compute the score only within ``margin`` px of pixels
        where it could exceed ``threshold`` (:func:`prune_bound`), 0 elsewhere. A mask ``smoothed score >
        threshold`` cleaned by morphology is then the same, bit for bit, and so is the smoothed score on it,
        when ``margin`` ≥ twice the smoothing radius plus the closing's (``kernel.prune_margin``).
    computed
        a list the boxes ``(y0, y1, x0, x1)`` of the result that were computed are appended to (disjoint;
        the whole when nothing was pruned). Their columns start on multiples of 32 of the result, or at its
        edges. Off them the score is 0 on the blocks of 8 rows × 32 columns next to them and not written
        further away (the smoothing of a box reads no further, and no pixel there passes the threshold).
    """
    before, after, sb, sa, med_b, inv_b, med_a, inv_a, u = _inputs(before, after, band_b, band_a, use, scale_b,
                                                                   scale_a)
    plan = _plan(prune, comp_stats, box, before.shape[1:])
    hbg, cells, gmax, rmap = background if background is not None else background_rows(
        before, after, med_b, inv_b, med_a, inv_a, u, cell=cell, row=row, col=col, size=size, q_step=q_step,
        q_lim=q_lim, scale_b=float(sb), scale_a=float(sa), plan=plan)
    h, w = before.shape[1:]
    y0, y1, x0, x1 = box if box is not None else (0, h, 0, w)
    if not (0 <= y0 < y1 <= h and 0 <= x0 < x1 <= w):
        raise ValueError(f"box {box} is not a non-empty part of the block (0, {h}, 0, {w})")
    bx = np.array([y0, y1, x0, x1], np.int64)
    vis = np.asarray(layout.vis, np.int64)
    if comp_stats is None:
        out = np.empty((layout.n_components, y1 - y0, x1 - x0), np.float32)
        cmed = cinv = np.zeros(layout.n_components, np.float32)
        _rows_k(before, after, sb, sa, med_b, inv_b, med_a, inv_a, hbg, cells, gmax, rmap, 0.0, row % cell, col % cell,
                cell, u, vis, layout.index_array(), 0, cmed, cinv, bx, out, np.float32(-1), 0)
        return out
    score = np.empty((y1 - y0, x1 - x0), np.float32) if out is None else out
    if score.shape != (y1 - y0, x1 - x0) or score.dtype != np.float32 or not score.flags.c_contiguous:
        raise ValueError(f"out must be C-contiguous float32 of shape {(y1 - y0, x1 - x0)}")
    cmed, cinv = _f32(comp_stats[0]), _f32(comp_stats[1])
    bound, margin = (plan[0], plan[1]) if plan is not None else (-1.0, 0)
    zext = _z_extent(before, after, sb, sa, med_b, inv_b, med_a, inv_a) if bound >= 0 else 0.0  # -1: later
    done = _rows_k(before, after, sb, sa, med_b, inv_b, med_a, inv_a, hbg, cells, gmax, rmap, zext, row % cell,
                   col % cell, cell, u, vis, layout.index_array(), 1, cmed, cinv, bx, score[None], np.float32(bound),
                   margin)
    if computed is not None:
        computed.extend(tuple(int(v) for v in r) for r in done)
    return score


def _z_extent(before: np.ndarray, after: np.ndarray, sb, sa, med_b, inv_b, med_a, inv_a) -> float:
    """The largest |za| + |zb| uint16 stacks' values can give, over bands (from the type's range: no pass
    over the pixels); -1 for float32 stacks (:func:`_extent_py` computes theirs when it is needed)."""
    if before.dtype != np.uint16:
        return -1.0

    def ext(sc, med, inv) -> np.ndarray:
        m, i = med.astype(np.float64), np.abs(inv.astype(np.float64))
        return np.maximum(np.abs(m), np.abs(65535.0 * float(sc) - m)) * i

    return float(np.max(ext(sb, med_b, inv_b) + ext(sa, med_a, inv_a)))


def prune_bound(threshold: float, med: float, inv: float) -> float:
    """The bound on Σ_b |zn − za|² (:func:`_cell_flags`) at or under which a pixel's gated score is
    surely under ``threshold``; -1 when none can be given (a threshold ≤ 0, or nothing non-negative).

    The gated score is at most the standardised magnitude ``(sqrt(s) - med) * inv`` (the direction is
    clamped to [0, 1]). The bound keeps a margin of 1e-3 × (|threshold| + |med × inv| + 1) under the
    threshold, far above float32 rounding, so a Gaussian of scores under it (weights summing to 1) stays
    under the threshold too."""
    if not (np.isfinite(threshold) and np.isfinite(med) and np.isfinite(inv)) or inv <= 0:
        return -1.0
    p = threshold - 1e-3 * (abs(threshold) + abs(med * inv) + 1.0)
    r = p / inv + med
    if p <= 0 or r <= 0:
        return -1.0
    return float(np.float32(r * r * (1 - 1e-5)))


def piece_sums(lab: np.ndarray, n_lab: int, score: np.ndarray, unobs: np.ndarray, before: np.ndarray,
               after: np.ndarray, bands_b: tuple[int, ...], bands_a: tuple[int, ...], *, scale_b: float,
               scale_a: float, kind: int, offset: tuple[int, int], windows: list[tuple[int, int, int, int]]) -> np.ndarray:
    """Per-label sums of a tile's core (n_lab, 6): pixels, score, index before, index after, unobservable
    pixels and all pixels of the label grown by one pixel.

    ``lab``: int32 labels of the core; ``score``: the core's; ``unobs``, ``before``, ``after``: the block's
    mask and band stacks (uint16 DN × scale or float32, scale 1), the core at ``offset`` (rows, columns) in them;
    ``bands_*``: the index's bands in each stack (``kind`` 0: NDVI (nir, red), 1: VARI (green, red, blue));
    ``windows``: (r0, r1, c0, c1) holding every labelled pixel, ≥ 3 rows apart.
    """
    sums = np.zeros((n_lab, 6), np.float64)
    if not windows:
        return sums
    before, after = _band_data(before), _band_data(after)
    sb = np.float32(scale_b) if before.dtype == np.uint16 else np.float32(1)
    sa = np.float32(scale_a) if after.dtype == np.uint16 else np.float32(1)
    if before.dtype != after.dtype:
        before = _f32(before * sb) if before.dtype == np.uint16 else before
        after = _f32(after * sa) if after.dtype == np.uint16 else after
        sb = sa = np.float32(1)
    score = score if score.dtype == np.float32 else score.astype(np.float32)  # a crop: no contiguous copy
    _piece_sums_k(np.ascontiguousarray(lab, np.int32), score, np.ascontiguousarray(unobs, np.bool_), before,
                  after, np.asarray(bands_b, np.int64), np.asarray(bands_a, np.int64), sb, sa, int(kind),
                  int(offset[0]), int(offset[1]), np.asarray(windows, np.int64).reshape(-1, 4), sums,
                  np.zeros(lab.shape[1], np.int32))
    return sums


def combine(comps: np.ndarray, comp_stats: tuple[np.ndarray, np.ndarray], use: np.ndarray,
            out: np.ndarray | None = None) -> np.ndarray:
    """Gated score of components (n, h, w): ``clip(max(directions), 0, 1) · max(magnitude, 0)``, 0 off ``use``
    (into ``out`` when given: C-contiguous float32 (h, w))."""
    out = np.empty(comps.shape[1:], np.float32) if out is None else out
    _combine_k(_f32(comps), _f32(comp_stats[0]), _f32(comp_stats[1]), np.ascontiguousarray(use, np.bool_), out)
    return out


def threshold(score: np.ndarray, thr: float, use: np.ndarray, out: np.ndarray | None = None,
              boxes: list[tuple[int, int, int, int]] | None = None) -> np.ndarray:
    """``(score > thr) & use`` as uint8 in one pass (into ``out`` when given: C-contiguous uint8); with
    ``boxes`` (y0, y1, x0, x1), only there (0 elsewhere: the score is not read there)."""
    out = np.empty(score.shape, np.uint8) if out is None else out
    bx = np.array([(0, score.shape[0], 0, score.shape[1])] if boxes is None else boxes, np.int64).reshape(-1, 4)
    # a view of the block's mask (a tile's box) is read in place: a contiguous copy was a fresh array a tile
    _threshold_k(_f32(score), np.float32(thr), use if use.dtype == np.bool_ else use.astype(np.bool_), out, bx)
    return out


def convert_u16(arr: np.ndarray, out: np.ndarray, slots: list[int], valid: np.ndarray, *, nodata: float | None,
                mask_max: bool, scale: float) -> None:
    """uint16 bands → ``out[slots]`` (float32, × ``scale``); ``valid`` cleared at nodata / saturated pixels."""
    nd = 0 if nodata is None or not float(nodata).is_integer() or not 0 <= nodata <= 65535 else int(nodata)
    has_nd = nodata is not None and float(nodata) == nd
    _u16_k(np.ascontiguousarray(arr), out, np.asarray(slots, np.int64), valid, np.uint16(nd), has_nd,
           np.uint16(65535), bool(mask_max), np.float32(scale))


def valid_u16(arr: np.ndarray, valid: np.ndarray, *, nodata: float | None, mask_max: bool) -> None:
    """Clear ``valid`` at nodata / saturated pixels of uint16 bands, without converting them."""
    nd = 0 if nodata is None or not float(nodata).is_integer() or not 0 <= nodata <= 65535 else int(nodata)
    has_nd = nodata is not None and float(nodata) == nd
    _valid_k(np.ascontiguousarray(arr), valid, np.uint16(nd), has_nd, np.uint16(65535), bool(mask_max), False)


def valid_f32(arr: np.ndarray, valid: np.ndarray, *, nodata: float | None, max_value: float | None = None) -> None:
    """Clear ``valid`` where a float32 band is ``nodata`` (compared in float32, as numpy does), not finite, or
    at ``max_value`` or above when given (integers read as float32: their type's top, saturated)."""
    has_nd = nodata is not None and not np.isnan(nodata)
    with np.errstate(over="ignore"):
        nd = np.float32(nodata) if has_nd else np.float32(0)
    top = np.float32(0 if max_value is None else max_value)
    _valid_k(np.ascontiguousarray(arr), valid, nd, has_nd, top, max_value is not None, True)


def cloud_candidates(data: np.ndarray, blue: int, green: int, red: int, *, scale: float = 1.0,
                     brightness: float = 0.3, whiteness: float = 0.7) -> np.ndarray:
    """Cloud candidates (uint8 0/1) of a band stack (uint16 DN × ``scale``, or float32 reflectance with
    scale 1) in one pass: the same numbers as the numpy test of :func:`tuban.raster.masks.cloud_mask`."""
    data = _band_data(data)
    out = np.empty(data.shape[1:], np.uint8)
    _cloud_cand_k(data, blue, green, red, np.float32(scale), np.float32(brightness), np.float32(whiteness), out)
    return out


def shadow_candidates(before: np.ndarray, after: np.ndarray, nir: tuple[int, int], swir: tuple[int, int] | None = None,
                      *, scale_b: float = 1.0, scale_a: float = 1.0, dark: float = 0.08) -> tuple[np.ndarray, np.ndarray]:
    """Shadow candidates (uint8 0/1) of the after and of the before date, as :func:`tuban.raster.masks.shadow_mask`.

    ``nir``, ``swir``: the band's index in the before and in the after stack (``swir`` ``None``: NIR only).
    Stacks are uint16 DN (× their scale) or float32 reflectance (scale 1).
    """
    before, after = _band_data(before), _band_data(after)
    if before.dtype != after.dtype:
        before = _f32(before * np.float32(scale_b)) if before.dtype == np.uint16 else before
        after = _f32(after * np.float32(scale_a)) if after.dtype == np.uint16 else after
        scale_b = scale_a = 1.0
    sw = swir if swir is not None else (-1, -1)
    out_a = np.empty(before.shape[1:], np.uint8)
    out_b = np.empty(before.shape[1:], np.uint8)
    _shadow_cand_k(before, after, nir[0], nir[1], sw[0], sw[1], np.float32(scale_b), np.float32(scale_a),
                   np.float32(dark), out_a, out_b)
    return out_a, out_b


def water(data: np.ndarray, green: int, nir: int, swir1: int | None = None, *, scale: float = 1.0,
          out: np.ndarray | None = None) -> np.ndarray:
    """Open water (bool) of a band stack (uint16 DN × ``scale``, or float32 reflectance with scale 1) in one
    pass: the same pixels as :func:`tuban.raster.masks.water_mask` of the scaled bands, without their float32
    copies. ``out``: a C-contiguous bool array of the stack's shape (h, w) to write into."""
    data = _band_data(data)
    if out is None:
        out = np.empty(data.shape[1:], np.bool_)
    _water_k(data, green, nir, -1 if swir1 is None else swir1, np.float32(scale), np.float32(0.2), out)
    return out


def bilinear(src: np.ndarray, rows: tuple[np.ndarray, np.ndarray], cols: tuple[np.ndarray, np.ndarray], *,
             wide: bool) -> np.ndarray:
    """``src`` (bands, rows, columns; edges repeated) resampled bilinearly in one pass: output row y between
    source rows ``rows[0][y]`` and the next, the next weighing ``rows[1][y]`` (0 ≤ w < 1), and likewise the
    columns; computed in float64 (``wide``) or float32, as :func:`tuban.raster.grid._along`'s passes do, so
    the same numbers. Integers come back in their type, rounded half up; floats as float32."""
    integer = np.issubdtype(src.dtype, np.integer)
    out = np.empty((src.shape[0], len(rows[0]), len(cols[0])), src.dtype if integer else np.float32)
    calc = np.float64 if wide else np.float32
    ha, hb = np.empty(len(cols[0]), calc), np.empty(len(cols[0]), calc)
    _bilinear_k(np.ascontiguousarray(src), rows[0], rows[1], cols[0], cols[1], bool(wide), bool(integer), out, ha, hb)
    return out


def warm() -> None:
    """Compile (or load from the cache) every kernel once in this process, on tiny inputs."""
    if not available():
        return
    rng = np.random.default_rng(0)
    b = rng.random((4, 12, 12), dtype=np.float32)
    a = rng.random((4, 12, 12), dtype=np.float32)
    st = (np.zeros(4, np.float32), np.ones(4, np.float32))
    use = np.ones((12, 12), bool)
    lay = FusedLayout(0, (0, 1, 2), nir=3, red=2, green=1, blue=0)
    c = components(b, a, st, st, use, lay, cell=4)
    cs = (np.zeros(3, np.float32), np.ones(3, np.float32))
    components(b, a, st, st, use, lay, cell=4, comp_stats=cs, prune=(0.5, 4))
    threshold(combine(c, cs, use), 0.5, use)
    threshold(combine(c, cs, use), 0.5, use, boxes=[(0, 5, 2, 9)])
    convert_u16(np.ones((1, 2, 2), np.uint16), np.empty((1, 2, 2), np.float32), [0], np.ones((2, 2), bool),
                nodata=0, mask_max=True, scale=1.0)
    valid_u16(np.ones((1, 2, 2), np.uint16), np.ones((2, 2), bool), nodata=0, mask_max=True)
    valid_f32(np.ones((1, 2, 2), np.float32), np.ones((2, 2), bool), nodata=-9999.0)
    idx, wts = np.zeros(2, np.int64), np.array([0.25, 0.75])  # coarser bands, dates on shifted pixel grids
    for v in (np.ones((1, 3, 3), np.uint16), np.ones((1, 3, 3), np.float32)):
        for wide in (False, True):
            bilinear(v, (idx, wts), (idx, wts), wide=wide)
    bu, au = (np.rint(v * 1000).astype(np.uint16) for v in (b, a))  # the uint16 specialisations
    for x, y in ((b, a), (bu, au)):
        cloud_candidates(x, 0, 1, 2)
        water(x, 1, 3)
        water(x, 1, 3, 2)
        shadow_candidates(x, y, (3, 3))
        shadow_candidates(x, y, (3, 3), (2, 2))
    components(bu, au, st, st, use, lay, cell=4, scale_b=1e-3, scale_a=1e-3)
    components(bu, au, st, st, use, lay, cell=4, comp_stats=cs, scale_b=1e-3, scale_a=1e-3, prune=(0.5, 4))
    # the patches' sums: a tile passes a crop of its score (not contiguous), others a whole array; 2.4 CPU-s to
    # compile, paid by a run's first tile when it was left out here
    lab = np.zeros((8, 8), np.int32)
    lab[2:4, 2:5] = 1
    score = np.ones((10, 10), np.float32)
    for x, y in ((b, a), (bu, au)):
        for sc in (score[1:9, 1:9], score[:8, :8].copy()):
            piece_sums(lab, 2, sc, np.zeros((12, 12), bool), x, y, (3, 2), (3, 2), scale_b=1.0, scale_a=1.0,
                       kind=0, offset=(2, 2), windows=[(2, 4, 2, 5)])
