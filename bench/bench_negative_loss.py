"""Benchmark: HGGT generator-loss assembly, vectorised vs an upstream-style per-sample loop.

What is timed (forward + backward, after the pool): choose one positive per sample for the L1 target, gather it,
L1; choose a negative and an independent positive per sample, build the refined weight map (Eq. 3-4) and the masked
negative L1; ``L = L1 − L_neg``; ``backward()``. The generator output is a leaf tensor (no network), so the
figures isolate the loss assembly.

* ``loop``: upstream style — Python loop over samples, ``random.choice`` over Python lists of indices,
  3x3 local variance via basicsr's ``get_local_weights`` (``unfold`` + ``torch.var``), as upstream, per-sample
  basicsr ``L1Loss`` calls.
* ``vectorised``: hggt_basicsr.sampling + ``HGGTNegativeLoss`` (centred two-pass variance over shifted views).
* the same with the ``avg_pool2d`` box-filter variance (E[x²] − E[x]²) for comparison;
* both again without the L1 target part (the negative term alone).

Usage: ``.venv/bin/python bench/bench_negative_loss.py [--batch 12] [--size 256] [--repeats 15] [--threads 2]``
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import torch
import torch.nn.functional as F

import hggt_basicsr  # noqa: F401  (compat before basicsr)
from hggt_basicsr.losses import HGGTNegativeLoss
from hggt_basicsr.losses import hggt_negative_loss as neg_mod
from hggt_basicsr.sampling import gather_versions, sample_negative, sample_positive

# ---------------------------------------------------------------------------------------------------------------
_L1 = {}


def _l1(weight: float):
    """basicsr's ``L1Loss`` (pixel loss of both models; upstream's negative term too)."""
    if weight not in _L1:
        from basicsr.losses.basic_loss import L1Loss

        _L1[weight] = L1Loss(loss_weight=weight)
    return _L1[weight]


def _unfold_var(r: torch.Tensor, ksize: int = 3) -> torch.Tensor:
    """basicsr's ``get_local_weights``, the function upstream HGGT calls (``Tensor.unfold`` views + ``torch.var``)."""
    from basicsr.losses.loss_util import get_local_weights  # after hggt_basicsr (compat fixes)

    return get_local_weights(r, ksize)


def loop_reference(sr, gts, labels, votes, forced=None, with_l1=True):
    """Upstream-style assembly; ``forced`` = (pos_l1, pos_map, neg) index lists for the equivalence check."""
    b = sr.shape[0]
    lab = labels.tolist()
    vts = votes.tolist()
    targets, l_neg = [], 0.0
    for i in range(b):
        positives = [j for j, v in enumerate(lab[i]) if v == 1]
        negatives = [j for j, v in enumerate(lab[i]) if v == 3]
        p = forced[0][i] if forced else (random.choice(positives) if positives else 0)
        targets.append(gts[i, p])
        if negatives:
            n = forced[2][i] if forced else random.choice(negatives)
            q = forced[1][i] if forced else (random.choice(positives) if positives else 0)
            ori, pos, neg = gts[i, 0:1], gts[i, q : q + 1], gts[i, n : n + 1]
            r_pos = (ori - pos).abs().sum(dim=1, keepdim=True)
            r_neg = (ori - neg).abs().sum(dim=1, keepdim=True)
            m_pos = vts[i][q] / 3 * _unfold_var(r_pos) ** 0.75
            m_neg = vts[i][n] / 3 * _unfold_var(r_neg) ** 0.75
            m = m_neg.clone()
            m[m_pos >= m_neg] = 0
            l_neg = l_neg + _l1(300.0)(m * sr[i : i + 1], m * neg)  # upstream: neg_opt {type: L1Loss}
    if not with_l1:
        return -l_neg / b
    target = torch.stack(targets)
    l_pix = _l1(1.0)(sr, target)
    return l_pix - l_neg / b


def vectorised(sr, gts, labels, votes, loss_fn, forced=None, with_l1=True):
    if forced:
        pos_l1, pos_map, neg_idx = (torch.tensor(f) for f in forced)
        has_neg = (labels == 3).any(dim=1)
    else:
        pos_l1 = sample_positive(labels, fallback_original=True)
        pos_map = sample_positive(labels, fallback_original=True)
        neg_idx, has_neg = sample_negative(labels)
    l_pix = _l1(1.0)(sr, gather_versions(gts, pos_l1)) if with_l1 else 0.0
    ar = torch.arange(sr.shape[0])
    l_neg = loss_fn(
        sr,
        gather_versions(gts, neg_idx),
        gts[:, 0],
        gather_versions(gts, pos_map),
        votes[ar, pos_map],
        votes[ar, neg_idx],
        has_neg,
    )
    return l_pix - l_neg


def _box_variance(x: torch.Tensor, ksize: int = 3) -> torch.Tensor:
    p = ksize // 2
    xp = F.pad(x, (p, p, p, p), mode='reflect')
    m = F.avg_pool2d(xp, ksize, stride=1)
    m2 = F.avg_pool2d(xp * xp, ksize, stride=1)
    n = ksize * ksize
    return ((m2 - m * m) * (n / (n - 1))).clamp_(min=0)


# ---------------------------------------------------------------------------------------------------------------
def _data(b, size, seed=0):
    g = torch.Generator().manual_seed(seed)
    gts = torch.randint(0, 256, (b, 5, 3, size, size), generator=g).float() / 255
    labels = torch.randint(1, 4, (b, 5), generator=g)
    labels[:, 0] = 0
    labels[0, 1:] = torch.tensor([1, 2, 2, 2])  # one sample without a negative
    labels[1, 1:] = torch.tensor([3, 2, 2, 3])  # one without a positive
    votes = torch.randint(2, 4, (b, 5), generator=g)
    votes[:, 0] = 3
    sr = torch.rand(b, 3, size, size, generator=g).requires_grad_()
    return sr, gts, labels, votes


def _time(fn, repeats):
    times = []
    for _ in range(repeats + 2):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times[2:]) * 1000, min(times[2:]) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--batch', type=int, default=12)
    ap.add_argument('--size', type=int, default=256)
    ap.add_argument('--repeats', type=int, default=15)
    ap.add_argument('--threads', type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    sr, gts, labels, votes = _data(args.batch, args.size)
    loss_fn = HGGTNegativeLoss(loss_weight=300.0)

    # equivalence check with the same indices
    forced = (
        sample_positive(labels, fallback_original=True).tolist(),
        sample_positive(labels, fallback_original=True).tolist(),
        sample_negative(labels)[0].tolist(),
    )
    a = loop_reference(sr, gts, labels, votes, forced)
    v = vectorised(sr, gts, labels, votes, loss_fn, forced)
    print(f'equivalence: loop {a.item():.6f}  vectorised {v.item():.6f}  |diff| {abs(a.item() - v.item()):.2e}')

    def run(fn):
        def step():
            sr.grad = None
            fn().backward()

        return step

    rows = [
        ('loop: L1 target + negative term', run(lambda: loop_reference(sr, gts, labels, votes))),
        ('vectorised: L1 target + negative term', run(lambda: vectorised(sr, gts, labels, votes, loss_fn))),
        ('loop: negative term only', run(lambda: loop_reference(sr, gts, labels, votes, with_l1=False))),
        ('vectorised: negative term only', run(lambda: vectorised(sr, gts, labels, votes, loss_fn, with_l1=False))),
    ]
    results = []
    for name, step in rows:
        results.append((name, *_time(step, args.repeats)))
    original = neg_mod.local_variance
    try:
        neg_mod.local_variance = _box_variance
        step = run(lambda: vectorised(sr, gts, labels, votes, loss_fn))
        results.append(('vectorised, avg_pool2d box variance: L1 + neg', *_time(step, args.repeats)))
    finally:
        neg_mod.local_variance = original

    print(f'batch {args.batch}, {args.size}x{args.size}, 5 GTs, threads {args.threads}, forward + backward')
    for k, (name, med, best) in enumerate(results):
        base = results[0 if k in (0, 1, 4) else 2]
        print(f'  {name:48s} median {med:7.1f} ms  min {best:7.1f} ms  speed-up vs loop: median {base[1] / med:4.1f}x')


if __name__ == '__main__':
    main()
