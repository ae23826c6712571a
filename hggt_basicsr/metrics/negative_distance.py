"""Distance of SR outputs to the human-labelled NEGATIVE and POSITIVE GTs of a test split (not an upstream metric).

HGGT (CVPR 2023, arXiv:2303.13069) subtracts a negative term (Eq. 3-5) that pushes the output away from the
negatives where their weight map ``M`` (Eq. 3-4) is non-zero. This shows whether a model moved: over the groups with
a final Positive and a final Negative, in 0-255 units, ``crop_border`` pixels cropped like the Test-100 metrics, each
averaged over a group's GTs, then over groups: ``l1_negative`` / ``l1_positive``, the mean absolute difference to
the negative / positive GTs; ``gap`` = ``l1_negative − l1_positive``; ``masked_l1_negative``, ``Σ M·|SR − I_n| / Σ M``
(channel mean) per (positive, negative) pair with a non-empty ``M``: what the negative term pushes up.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from hggt_basicsr.data.layout import load_test_layout
from hggt_basicsr.evaluate import match_sr_files
from hggt_basicsr.io import read_image
from hggt_basicsr.labels import LABEL_CODES
from hggt_basicsr.losses.hggt_negative_loss import negative_weight_map

__all__ = ['NEGATIVE_DISTANCE_KEYS', 'negative_distance']

NEGATIVE_DISTANCE_KEYS = ('l1_negative', 'l1_positive', 'gap', 'masked_l1_negative')


def _load(path: os.PathLike) -> torch.Tensor:
    """(1, 3, H, W) float64 in 0-255 (channel order does not matter: every sum is over the channels)."""
    return torch.from_numpy(read_image(path)).permute(2, 0, 1)[None].double()


def negative_distance(test_root: str | os.PathLike, sr_dir: str | os.PathLike, *, crop_border: int = 4) -> dict:
    """The distances of the SR images in ``sr_dir`` (``<stem>_<suffix>.png``) to the GTs of ``test_root``:
    ``{'groups': [stems used], 'crop_border': int, <key>: mean or None}`` for :data:`NEGATIVE_DISTANCE_KEYS`."""
    layout = load_test_layout(test_root, check_images=False)
    g, files = layout.groups, match_sr_files(sr_dir, layout.stems)
    rows: dict[str, list] = {k: [] for k in ('groups', *NEGATIVE_DISTANCE_KEYS)}

    def crop(x: torch.Tensor) -> torch.Tensor:
        return x[..., crop_border : x.shape[-2] - crop_border, crop_border : x.shape[-1] - crop_border]

    for i, stem in enumerate(g.stems):
        pos, neg = (np.flatnonzero(g.labels[i] == LABEL_CODES[name]) for name in ('Positive', 'Negative'))
        if not len(pos) or not len(neg):
            continue
        rows['groups'].append(stem)
        sr, ori = _load(files[stem]), _load(layout.image_path(stem, 'original'))
        p_img, n_img = (torch.cat([_load(layout.image_path(stem, g.versions[k - 1])) for k in ks]) for ks in (pos, neg))
        rows['l1_positive'].append(float(crop(sr - p_img).abs().mean()))
        rows['l1_negative'].append(float(crop(sr - n_img).abs().mean()))
        rows['gap'].append(rows['l1_negative'][-1] - rows['l1_positive'][-1])
        # every (positive, negative) pair, positive-major
        pp, nn, votes = p_img.repeat_interleave(len(neg), 0), n_img.repeat(len(pos), 1, 1, 1), g.votes[i]
        pair_votes = torch.from_numpy(votes[pos].repeat(len(neg))), torch.from_numpy(np.tile(votes[neg], len(pos)))
        m = crop(negative_weight_map(ori.expand_as(pp) / 255, pp / 255, nn / 255, *pair_votes)[:, 0]).double()
        total = m.sum((1, 2))
        if (total > 0).any():
            masked = (m * crop(sr - nn).abs().mean(1)).sum((1, 2)) / total
            rows['masked_l1_negative'].append(float(masked[total > 0].mean()))
    groups = rows.pop('groups')
    return {
        'groups': groups,
        'crop_border': crop_border,
        **{k: sum(v) / len(v) if v else None for k, v in rows.items()},
    }
