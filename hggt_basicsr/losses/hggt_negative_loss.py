"""The masked negative term of HGGT (CVPR 2023, arXiv 2303.13069, Eq. 3-5).

For each sample with a human-labelled negative GT ``I_n`` (and a positive ``I_p``, or the original when it has
none), on the cropped GT patches:

* residual maps ``R_n = Σ_c |I_ori − I_n|`` and ``R_p = Σ_c |I_ori − I_p|`` (B, 1, H, W);
* local unbiased variance ``V(R)`` over ``ksize x ksize`` windows with reflect padding;
* ``M_n = (k_n / 3) · V(R_n)^power`` and ``M_p = (k_p / 3) · V(R_p)^power`` with the vote counts ``k`` (2 or 3;
  3 for the original), the patch-level weight of upstream code (not in the paper's equation);
* refinement ``M = M_n`` with ``M[M_p >= M_n] = 0`` (ties zeroed, as upstream);
* ``l_i = mean over (3, H, W) of |M ⊙ (SR_i − I_n)|`` and the term ``δ · (1 / B) · Σ_{i with a negative} l_i``.

The loss module returns that non-negative number; the model SUBTRACTS it from the generator loss (Eq. 5).

What we changed against upstream, and why:

* vectorised over the batch (upstream loops over samples);
* the local variance is computed in two passes over the ``ksize² − 1`` shifted views of the reflect-padded map
  (no ``unfold`` copy): the window mean of the deviations from the centre pixel, then the sum of squared
  deviations from that mean. This avoids the float32 cancellation of the ``E[x²] − E[x]²`` box-filter form: a flat
  window gives exactly 0, so ties ``M_p >= M_n`` behave as with upstream's ``torch.var``; it is also faster than
  ``avg_pool2d`` here (bench/bench_negative_loss.py); the result is clamped at 0;
* the maps depend only on GTs and are computed under ``no_grad``; no host syncs (no ``.item()``);
* the masked L1 is one small autograd function: the forward saves ``M ⊙ sign(SR − I_n)``, which is the whole
  backward (the gradient of ``|·|`` is taken as 0 at 0, as torch's ``abs``);
* ``bounded=True`` (off by default) is a per-pixel hinge: ``|SR − I_n|`` saturates at ``margin``, i.e.
  ``l_i = mean(M ⊙ min(|SR_i − I_n|, margin))``, so the generator gains nothing by moving a pixel further than
  ``margin`` from the negative; the upstream term is unbounded.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from basicsr.utils.registry import LOSS_REGISTRY
from torch import nn

from hggt_basicsr.errors import ConfigError
from hggt_basicsr.options import Opt, check_section

__all__ = ['HGGTNegativeLoss', 'local_variance', 'negative_weight_map']

#: the options of ``train.neg_opt`` (with ``type: HGGTNegativeLoss``)
OPTIONS = {
    'loss_weight': Opt('num', 300.0),  # δ (paper and upstream configs: 300)
    'ksize': Opt('int', 3, lo=3, odd=True),  # local-variance window
    'power': Opt('num', 0.75, lo=0),  # exponent on the local variance, > 0
    'vote_weight': Opt('bool', True),  # weight the maps by votes / 3 (upstream); False: weight 1
    'bounded': Opt('bool', False),  # per-pixel hinge min(|SR − I_n|, margin) instead of |SR − I_n| (off = upstream)
    'margin': Opt('num', 0.05, lo=0),  # the hinge margin in [0, 1] intensity units, > 0 with bounded
    'reduction': Opt('str', 'mean', choices=('mean', 'sum', 'none')),
}


def local_variance(x: torch.Tensor, ksize: int = 3) -> torch.Tensor:
    """Unbiased variance (>= 0) of every ``ksize x ksize`` window of (B, C, H, W) with reflect padding, as
    ``unfold`` + ``torch.var``; ``ksize`` odd >= 3."""
    if ksize < 3 or ksize % 2 == 0:
        raise ValueError(f'ksize must be odd and >= 3, got {ksize}')
    h, w = x.shape[-2:]
    p = ksize // 2
    n = ksize * ksize
    xp = F.pad(x, (p, p, p, p), mode='reflect')
    views = [xp[..., dy : dy + h, dx : dx + w] for dy in range(ksize) for dx in range(ksize) if (dy, dx) != (p, p)]
    tmp = torch.empty_like(x)
    # pass 1: window mean, as centre + mean deviation from the centre (exactly the centre for a flat window)
    mean = torch.zeros_like(x)
    for view in views:
        mean.add_(torch.sub(view, x, out=tmp))
    mean.div_(n)
    ss = mean * mean  # the centre pixel's squared deviation
    mean.add_(x)
    # pass 2: squared deviations from the window mean
    for view in views:
        torch.sub(view, mean, out=tmp)
        ss.addcmul_(tmp, tmp)
    return ss.div_(n - 1).clamp_(min=0)


class _WeightedAbsSum(torch.autograd.Function):
    """Per-sample ``Σ_{c,h,w} M ⊙ φ(|sr − neg|)`` with φ the identity or ``min(·, margin)``; gradient to ``sr`` only."""

    @staticmethod
    def forward(ctx, sr, neg, weights, margin):  # noqa: D102
        b = sr.shape[0]
        d = sr.detach().float() - neg.float()
        direction = torch.sign(d).mul_(weights)  # M ⊙ sign(d): the gradient of the per-sample sum
        if margin is None:
            value = torch.bmm(direction.reshape(b, 1, -1), d.reshape(b, -1, 1)).view(b)  # Σ M |d|
        else:
            d.abs_()
            direction.masked_fill_(d > margin, 0.0)  # saturated pixels push no further
            value = (d.clamp_(max=margin) * weights).sum(dim=(1, 2, 3))
        ctx.save_for_backward(direction)
        ctx.sr_dtype = sr.dtype
        return value

    @staticmethod
    def backward(ctx, grad):  # noqa: D102
        (direction,) = ctx.saved_tensors
        return (direction * grad.view(-1, 1, 1, 1)).to(ctx.sr_dtype), None, None, None


def _channel_abs_sum(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``Σ_c |a − b|`` as (B, 1, H, W), one channel at a time (no (B, C, H, W) temporary)."""
    out = torch.sub(a[:, 0:1], b[:, 0:1]).abs_()
    tmp = torch.empty_like(out)
    for c in range(1, a.shape[1]):
        out.add_(torch.sub(a[:, c : c + 1], b[:, c : c + 1], out=tmp).abs_())
    return out


def _vote_weight(votes: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor | float:
    if votes is None:
        return 1.0
    return (torch.as_tensor(votes, device=like.device).to(like.dtype) / 3.0).view(-1, 1, 1, 1)


@torch.no_grad()
def negative_weight_map(
    ori: torch.Tensor,
    pos: torch.Tensor,
    neg: torch.Tensor,
    pos_votes: torch.Tensor | None,
    neg_votes: torch.Tensor | None,
    ksize: int = 3,
    power: float = 0.75,
) -> torch.Tensor:
    """The refined per-pixel weight map ``M`` (B, 1, H, W), float32 >= 0, without gradient.

    ``ori``, ``pos`` (the original where a sample has no positive) and ``neg`` are (B, 3, H, W) patches in [0, 1];
    the votes are (B,) ints (3 for the original), or None for weight 1.
    """
    ori, pos, neg = ori.float(), pos.float(), neg.float()
    m_pos = local_variance(_channel_abs_sum(ori, pos), ksize).pow_(power).mul_(_vote_weight(pos_votes, ori))
    m_neg = local_variance(_channel_abs_sum(ori, neg), ksize).pow_(power).mul_(_vote_weight(neg_votes, ori))
    return m_neg.masked_fill_(m_pos >= m_neg, 0.0)


@LOSS_REGISTRY.register()
class HGGTNegativeLoss(nn.Module):
    """HGGT's masked negative L1 term (Eq. 3-5): a non-negative value that the model subtracts.

    Options: see :data:`OPTIONS`. ``reduction`` 'mean': (1 / B) Σ over the samples with a negative (B counts all
    samples, as upstream); 'sum': Σ over the samples with a negative; 'none': (B,) per-sample values (0 without a
    negative).
    """

    def __init__(
        self,
        loss_weight: float = 300.0,
        ksize: int = 3,
        power: float = 0.75,
        vote_weight: bool = True,
        bounded: bool = False,
        margin: float = 0.05,
        reduction: str = 'mean',
    ) -> None:
        super().__init__()
        given = dict(loss_weight=loss_weight, ksize=ksize, power=power, vote_weight=vote_weight)
        given.update(bounded=bounded, margin=margin, reduction=reduction)
        o = check_section(given, OPTIONS, 'neg_opt')
        if o['power'] <= 0:
            raise ConfigError(f'neg_opt.power: expected a number > 0, got {power!r}')
        if o['bounded'] and o['margin'] <= 0:
            raise ConfigError(f'neg_opt.margin: expected a number > 0 with bounded: true, got {margin!r}')
        for key, value in o.items():  # loss_weight, ksize, power, vote_weight, bounded, margin, reduction
            setattr(self, key, value)

    def extra_repr(self) -> str:
        return ', '.join(f'{k}={getattr(self, k)!r}' for k in OPTIONS)

    def forward(
        self,
        sr: torch.Tensor,
        neg: torch.Tensor,
        ori: torch.Tensor,
        pos: torch.Tensor,
        pos_votes: torch.Tensor,
        neg_votes: torch.Tensor,
        has_neg: torch.Tensor,
    ) -> torch.Tensor:
        """δ · reduce_i(l_i) over the samples with a negative: a scalar (or (B,) with reduction 'none') >= 0.

        ``sr`` (B, 3, H, W) is the network output (the only input with a gradient); ``neg`` (any content where
        ``has_neg`` (B,) bool is False), ``ori``, ``pos`` (the original where there is none) are (B, 3, H, W)
        patches; ``pos_votes`` / ``neg_votes`` (B,) their vote counts.
        """
        votes = (pos_votes, neg_votes) if self.vote_weight else (None, None)
        weights = negative_weight_map(ori, pos, neg, *votes, ksize=self.ksize, power=self.power)
        # float32 even under autocast: bmm would otherwise run in fp16 / bf16 (lossy, and fp16 overflows for sums
        # above 65504 on large patches)
        dev = sr.device.type
        fp32 = torch.autocast(dev, enabled=False) if torch.amp.is_autocast_available(dev) else contextlib.nullcontext()
        with fp32:
            sums = _WeightedAbsSum.apply(sr, neg, weights, self.margin if self.bounded else None)
        per_sample = sums * (has_neg.to(device=sums.device, dtype=sums.dtype) / sr[0].numel())
        if self.reduction == 'none':
            return self.loss_weight * per_sample
        loss = per_sample.sum()
        return self.loss_weight * (loss / sr.shape[0] if self.reduction == 'mean' else loss)
