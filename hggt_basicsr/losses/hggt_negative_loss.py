"""The masked negative term of HGGT (CVPR 2023, arXiv 2303.13069, Eq. 3-5; hggt-upstream.md §3.5).

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
  ``margin`` from the negative; the upstream term is unbounded (§9 item 5).
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from basicsr.utils.registry import LOSS_REGISTRY
from torch import nn

from hggt_basicsr.errors import ConfigError

__all__ = ['HGGTNegativeLoss', 'local_variance', 'negative_weight_map']

_REDUCTIONS = ('mean', 'sum', 'none')


def local_variance(x: torch.Tensor, ksize: int = 3) -> torch.Tensor:
    """Unbiased variance of every ``ksize x ksize`` window (reflect padding), as ``unfold`` + ``torch.var``.

    Args:
        x: (B, C, H, W) float.
        ksize: odd window size >= 3.

    Returns:
        (B, C, H, W), >= 0.
    """
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
            d.clamp_(max=margin)
            value = (d * weights).sum(dim=(1, 2, 3))
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
    votes = torch.as_tensor(votes, device=like.device)
    return (votes.to(like.dtype) / 3.0).view(-1, 1, 1, 1)


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
    """The refined per-pixel weight map ``M`` of the negative term (§3.5).

    Args:
        ori: (B, 3, H, W) original HR patches in [0, 1].
        pos: (B, 3, H, W) positive patches (the original where a sample has no positive).
        neg: (B, 3, H, W) negative patches.
        pos_votes: (B,) int vote counts of the positive (3 for the original), or None for weight 1.
        neg_votes: (B,) int vote counts of the negative (2 or 3), or None for weight 1.
        ksize: local-variance window.
        power: exponent applied to the local variance.

    Returns:
        (B, 1, H, W) float32 map, >= 0, without gradient.
    """
    ori, pos, neg = ori.float(), pos.float(), neg.float()
    r_pos = _channel_abs_sum(ori, pos)
    r_neg = _channel_abs_sum(ori, neg)
    m_pos = local_variance(r_pos, ksize).pow_(power).mul_(_vote_weight(pos_votes, ori))
    m_neg = local_variance(r_neg, ksize).pow_(power).mul_(_vote_weight(neg_votes, ori))
    return m_neg.masked_fill_(m_pos >= m_neg, 0.0)


@LOSS_REGISTRY.register()
class HGGTNegativeLoss(nn.Module):
    """HGGT's masked negative L1 term (Eq. 3-5): a non-negative value that the model subtracts.

    Args:
        loss_weight: δ (paper and upstream configs: 300).
        ksize: local-variance window (3).
        power: exponent on the local variance (0.75).
        vote_weight: weight the maps by votes / 3 (upstream); False → weight 1.
        bounded: per-pixel hinge ``min(|SR − I_n|, margin)`` instead of ``|SR − I_n|`` (off = upstream).
        margin: the hinge margin in [0, 1] intensity units (only with ``bounded``).
        reduction: 'mean' → (1 / B) Σ over samples with a negative (B counts all samples, as upstream);
            'sum' → Σ over samples with a negative; 'none' → (B,) per-sample values (0 without a negative).
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
        if reduction not in _REDUCTIONS:
            raise ConfigError(f'neg_opt.reduction: unsupported {reduction!r}; choose one of {list(_REDUCTIONS)}')
        if int(ksize) < 3 or int(ksize) % 2 == 0:
            raise ConfigError(f'neg_opt.ksize: must be odd and >= 3, got {ksize}')
        if float(power) <= 0:
            raise ConfigError(f'neg_opt.power: must be positive, got {power}')
        if bounded and float(margin) <= 0:
            raise ConfigError(f'neg_opt.margin: must be positive with bounded: true, got {margin}')
        self.loss_weight = float(loss_weight)
        self.ksize = int(ksize)
        self.power = float(power)
        self.vote_weight = bool(vote_weight)
        self.bounded = bool(bounded)
        self.margin = float(margin)
        self.reduction = reduction

    def extra_repr(self) -> str:
        return (
            f'loss_weight={self.loss_weight}, ksize={self.ksize}, power={self.power}, vote_weight={self.vote_weight}, '
            f'bounded={self.bounded}, margin={self.margin}, reduction={self.reduction!r}'
        )

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
        """Compute δ · reduce_i(l_i) over the samples with a negative.

        Args:
            sr: (B, 3, H, W) network output (gradient flows only here).
            neg: (B, 3, H, W) negative patches (any content where ``has_neg`` is False).
            ori: (B, 3, H, W) original patches.
            pos: (B, 3, H, W) positive patches (the original where there is none).
            pos_votes: (B,) int vote counts of ``pos``.
            neg_votes: (B,) int vote counts of ``neg``.
            has_neg: (B,) bool.

        Returns:
            A scalar tensor (or (B,) with reduction 'none'), >= 0, on ``sr``'s device.
        """
        b = sr.shape[0]
        weights = negative_weight_map(
            ori,
            pos,
            neg,
            pos_votes if self.vote_weight else None,
            neg_votes if self.vote_weight else None,
            ksize=self.ksize,
            power=self.power,
        )
        # float32 even under autocast: bmm would otherwise run in fp16 / bf16 (lossy, and fp16 overflows for sums
        # above 65504 on large patches)
        device_type = sr.device.type
        no_autocast = (
            torch.autocast(device_type=device_type, enabled=False)
            if torch.amp.is_autocast_available(device_type)
            else contextlib.nullcontext()
        )
        with no_autocast:
            sums = _WeightedAbsSum.apply(sr, neg, weights, self.margin if self.bounded else None)
        per_sample = sums * (has_neg.to(device=sums.device, dtype=sums.dtype) / sr[0].numel())
        if self.reduction == 'mean':
            loss = per_sample.sum() / b
        elif self.reduction == 'sum':
            loss = per_sample.sum()
        else:
            loss = per_sample
        return self.loss_weight * loss
