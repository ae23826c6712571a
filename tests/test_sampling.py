"""Tests of hggt_basicsr.sampling: uniform positive / negative choice per sample, vectorised."""

from __future__ import annotations

import pytest
import torch
from scipy.stats import chisquare

import hggt_basicsr  # noqa: F401
from hggt_basicsr.errors import DataError
from hggt_basicsr.sampling import gather_versions, sample_negative, sample_positive


def _random_labels(b=500, k=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(1, 4, (b, k + 1), generator=g)
    labels[:, 0] = 0
    return labels


def test_positive_is_uniform_among_positives():
    n = 30000
    labels = torch.tensor([[0, 1, 3, 1, 1]]).expand(n, 5)
    idx = sample_positive(labels, fallback_original=False, generator=torch.Generator().manual_seed(0))
    counts = torch.bincount(idx, minlength=5)
    assert counts[0] == 0 and counts[2] == 0
    stat = chisquare(counts[[1, 3, 4]].numpy())
    assert stat.pvalue > 1e-3, counts
    # mixed rows in one batch: each row uniform over its own positives
    labels = torch.tensor([[0, 1, 1, 2, 3], [0, 3, 2, 2, 1]]).repeat(n // 2, 1)
    idx = sample_positive(labels, fallback_original=False, generator=torch.Generator().manual_seed(1))
    first = torch.bincount(idx[0::2], minlength=5)
    assert first[[0, 3, 4]].sum() == 0 and chisquare(first[[1, 2]].numpy()).pvalue > 1e-3
    assert torch.all(idx[1::2] == 4)


def test_positive_never_picks_a_non_positive():
    labels = _random_labels()
    for seed in range(5):
        torch.manual_seed(seed)
        idx = sample_positive(labels, fallback_original=True)
        has = (labels == 1).any(dim=1)
        picked = labels.gather(1, idx.view(-1, 1)).squeeze(1)
        assert torch.all(picked[has] == 1)
        assert torch.all(idx[~has] == 0)
    assert (~has).any() and has.any()


def test_positive_without_fallback_raises():
    labels = torch.tensor([[0, 1, 2], [0, 3, 2]])
    with pytest.raises(DataError, match=r'\[1\]'):
        sample_positive(labels, fallback_original=False)


def test_negative_sampling():
    labels = _random_labels(seed=1)
    idx, has_neg = sample_negative(labels, generator=torch.Generator().manual_seed(2))
    assert torch.equal(has_neg, (labels == 3).any(dim=1))
    picked = labels.gather(1, idx.view(-1, 1)).squeeze(1)
    assert torch.all(picked[has_neg] == 3) and torch.all(idx[~has_neg] == 0)
    n = 30000
    idx, _ = sample_negative(torch.tensor([[0, 3, 1, 3, 3]]).expand(n, 5))
    counts = torch.bincount(idx, minlength=5)
    assert counts[[0, 2]].sum() == 0 and chisquare(counts[[1, 3, 4]].numpy()).pvalue > 1e-3


def test_gather_versions():
    gts = torch.arange(3 * 4, dtype=torch.float32).view(3, 4, 1, 1, 1).expand(3, 4, 3, 2, 2)
    out = gather_versions(gts, torch.tensor([2, 0, 3]))
    assert out.shape == (3, 3, 2, 2)
    assert out[:, 0, 0, 0].tolist() == [2.0, 4.0, 11.0]
