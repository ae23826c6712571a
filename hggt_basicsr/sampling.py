"""Vectorised per-sample choice of the positive / negative GT version (upstream HGGT's target selection).

Labels follow :data:`hggt_basicsr.labels.LABEL_CODES`: 0 original, 1 Positive, 2 Similar, 3 Negative; column 0 of
a ``(B, K + 1)`` label matrix is the original HR image. Each sample draws one column uniformly among the columns
carrying the wanted label: i.i.d. uniform scores, masked to the eligible columns, then ``argmax`` (no Python loop
over samples, no host sync unless an error has to be raised).

Upstream draws the positive of the L1 / perceptual / GAN targets and the positive of the negative loss's
refinement map independently; a model reproduces that by calling :func:`sample_positive` twice.
"""

from __future__ import annotations

import torch

from hggt_basicsr.errors import DataError

__all__ = ['NEGATIVE', 'POSITIVE', 'gather_versions', 'sample_label', 'sample_negative', 'sample_positive']

POSITIVE = 1
NEGATIVE = 3


def sample_label(
    labels: torch.Tensor, code: int, *, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sample of (B, N) labels, one column drawn uniformly among those equal to ``code``: ``idx`` (B,) int64
    (0 where the sample has none) and ``found`` (B,) bool. ``generator``: optional, on ``labels``' device."""
    if labels.dim() != 2:
        raise ValueError(f'labels must be (B, N), got shape {tuple(labels.shape)}')
    eligible = labels == code
    scores = torch.rand(labels.shape, generator=generator, device=labels.device)
    # eligible scores lie in [1, 2), the others at 0: argmax is uniform over the eligible columns
    scores = torch.where(eligible, scores + 1.0, torch.zeros_like(scores))
    found = eligible.any(dim=1)
    return torch.where(found, scores.argmax(dim=1), torch.zeros_like(found, dtype=torch.int64)), found


def sample_positive(
    labels: torch.Tensor, *, fallback_original: bool, generator: torch.Generator | None = None
) -> torch.Tensor:
    """(B,) int64 index of one Positive version per sample of (B, K + 1) labels, uniform among its positives.

    A sample without a positive gets 0 (the original HR, HGGT's Pos+Neg mode) with ``fallback_original``, else a
    DataError (the Pos datasets keep only groups with a positive; this check syncs with the device).
    """
    idx, found = sample_label(labels, POSITIVE, generator=generator)
    if not fallback_original and not bool(found.all()):
        missing = (~found).nonzero().flatten().tolist()
        raise DataError(
            f'batch samples {missing} have no Positive version; filter the training set to groups with a positive '
            '(the Pos datasets do) or use gt_mode positive_negative, which falls back to the original'
        )
    return idx


def sample_negative(
    labels: torch.Tensor, *, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Index of one Negative version per sample, uniform among its negatives, and ``has_neg``; see sample_label."""
    return sample_label(labels, NEGATIVE, generator=generator)


def gather_versions(gts: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Version ``idx[i]`` of sample ``i`` of a (B, N, C, H, W) stack: a new (B, C, H, W) tensor."""
    idx = idx.to(device=gts.device, dtype=torch.int64)
    return gts[torch.arange(gts.shape[0], device=gts.device), idx]
