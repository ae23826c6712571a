"""Training-pair pool: shuffles degraded pairs across iterations (Real-ESRGAN / HGGT ``_dequeue_and_enqueue``).

Semantics (shared/reference/hggt-upstream.md §3.2), for a pool of ``queue_size`` Q and batch size B:

* while the pool is not full, the current batch is appended and returned unchanged;
* once full, one ``randperm(Q)`` is drawn; its first B slots are returned as this iteration's batch and the
  current batch is written into those B slots. (Upstream permutes the whole pool in memory and then swaps the
  first B slots; picking the B slots through the permutation instead gives the same distribution while moving
  only 2·B entries per iteration instead of Q.)

The pool carries the LQ batch, the whole GT stack (all versions of a group), and optionally the per-version labels
and vote counts, all aligned by slot. It is allocated lazily on the first call, on the inputs' device.

Memory: images are stored as uint8 (``round(x * 255)``) and returned as ``float32 / 255``. This is lossless for
8-bit data: HGGT GTs are 8-bit PNGs (basicsr decodes to uint8 then divides by 255, and crops / flips keep the
values), and the LQ produced by :mod:`hggt_basicsr.degradations` is rounded to the 8-bit grid as its last step.
(Bit-exact on CPU; on CUDA, where torch divides by a scalar through its reciprocal, a value may differ from the
input by one float32 ulp.) Hence the pool needs a quarter of upstream's float32 memory: Q=144, 5 GTs at 256², LQ 64²,
labels + votes: 143 MB instead of 573 MB (bench/bench_pool_memory.py).
Pass ``store_uint8=False`` for data that is not on the 8-bit grid (e.g. USM-sharpened targets): float32 storage.
"""

from __future__ import annotations

import torch

from hggt_basicsr.errors import ConfigError

__all__ = ['TrainingPairPool', 'pool_nbytes']


def _to_storage(x: torch.Tensor, uint8: bool) -> torch.Tensor:
    if uint8 and x.is_floating_point():
        return (x.detach() * 255.0).round_().clamp_(0, 255).to(torch.uint8)
    return x.detach()


def _from_storage(x: torch.Tensor, uint8: bool) -> torch.Tensor:
    if uint8 and x.dtype == torch.uint8:
        return x / 255.0  # uint8 / float -> float32 in one op
    return x  # already a copy (advanced indexing)


def pool_nbytes(
    queue_size: int, lq_shape: tuple[int, ...], gts_shape: tuple[int, ...], *, labels: bool = True, uint8: bool = True
) -> int:
    """Bytes a pool needs for ``queue_size`` slots of one LQ ``lq_shape`` and one GT stack ``gts_shape`` (no batch
    dim; ``gts_shape`` (N, 3, H, W)), plus int64 labels and votes of length N when ``labels``."""
    item = 1 if uint8 else 4
    numel = 1
    for s in lq_shape:
        numel *= s
    gnumel = 1
    for s in gts_shape:
        gnumel *= s
    extra = 2 * 8 * gts_shape[0] if labels else 0
    return queue_size * ((numel + gnumel) * item + extra)


class TrainingPairPool:
    """Pool of (lq, gts, labels, votes) training pairs with upstream §3.2 semantics; see the module docstring.

    Args:
        queue_size: number of slots Q (option ``queue_size``); a multiple of ``batch_size``.
        batch_size: the per-process batch size B (option ``datasets.train.batch_size_per_gpu``).
        store_uint8: store images as uint8 (lossless for 8-bit data, 4x smaller) instead of float32.
        generator: optional generator (on the inputs' device) for the permutations; torch's RNG otherwise.

    Raises:
        ConfigError: ``queue_size`` is not a positive multiple of ``batch_size``.
    """

    def __init__(
        self, queue_size: int, batch_size: int, *, store_uint8: bool = True, generator: torch.Generator | None = None
    ) -> None:
        queue_size, batch_size = int(queue_size), int(batch_size)
        if batch_size <= 0:
            raise ConfigError(f'datasets.train.batch_size_per_gpu: must be positive, got {batch_size}')
        if queue_size <= 0 or queue_size % batch_size != 0:
            raise ConfigError(
                f'queue_size: must be a positive multiple of the batch size {batch_size} '
                f'(datasets.train.batch_size_per_gpu), got {queue_size}; '
                f'e.g. queue_size: {max(1, round(queue_size / batch_size)) * batch_size}'
            )
        self.queue_size = queue_size
        self.batch_size = batch_size
        self.store_uint8 = bool(store_uint8)
        self.generator = generator
        self.ptr = 0
        self._lq: torch.Tensor | None = None
        self._gts: torch.Tensor | None = None
        self._labels: torch.Tensor | None = None
        self._votes: torch.Tensor | None = None
        self._has_labels = False
        self._has_votes = False

    # ------------------------------------------------------------------------------------------------------
    @property
    def is_full(self) -> bool:
        return self.ptr == self.queue_size

    @property
    def nbytes(self) -> int:
        """Bytes held by the allocated pool tensors (0 before the first call)."""
        return sum(
            t.numel() * t.element_size() for t in (self._lq, self._gts, self._labels, self._votes) if t is not None
        )

    def reset(self) -> None:
        """Drop the stored pairs (the next call starts filling again)."""
        self.__init__(self.queue_size, self.batch_size, store_uint8=self.store_uint8, generator=self.generator)

    def _allocate(self, lq, gts, labels, votes) -> None:
        q = self.queue_size
        img_dtype = torch.uint8 if self.store_uint8 else torch.float32
        self._lq = torch.empty((q, *lq.shape[1:]), dtype=img_dtype, device=lq.device)
        self._gts = torch.empty((q, *gts.shape[1:]), dtype=img_dtype, device=gts.device)
        self._has_labels = labels is not None
        self._has_votes = votes is not None
        if labels is not None:
            self._labels = torch.empty((q, *labels.shape[1:]), dtype=torch.int64, device=labels.device)
        if votes is not None:
            self._votes = torch.empty((q, *votes.shape[1:]), dtype=torch.int64, device=votes.device)

    def _check(self, lq, gts, labels, votes) -> None:
        b = lq.shape[0]
        if b != self.batch_size or gts.shape[0] != b:
            raise ValueError(
                f'TrainingPairPool(batch_size={self.batch_size}) got lq batch {b} and gts batch {gts.shape[0]}; '
                'the training dataloader must drop its last incomplete batch'
            )
        if (labels is not None) != self._has_labels or (votes is not None) != self._has_votes:
            raise ValueError('TrainingPairPool: labels / votes must be given on every call or on none')
        for name, x, store in (('lq', lq, self._lq), ('gts', gts, self._gts)):
            if tuple(x.shape[1:]) != tuple(store.shape[1:]):
                raise ValueError(
                    f'TrainingPairPool: {name} shape {tuple(x.shape)} differs from the pooled '
                    f'(B, {", ".join(map(str, store.shape[1:]))})'
                )

    def __call__(
        self,
        lq: torch.Tensor,
        gts: torch.Tensor,
        labels: torch.Tensor | None = None,
        votes: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Push the current batch and return the batch to train on.

        Args:
            lq: (B, 3, h, w) float in [0, 1].
            gts: (B, N, 3, H, W) GT stack (or (B, 3, H, W) for a single GT), float in [0, 1].
            labels: optional (B, N) int labels per version (column 0 = original).
            votes: optional (B, N) int vote counts per version.

        Returns:
            ``(lq, gts, labels, votes)`` of the same shapes; images float32 on the inputs' device; labels / votes
            int64 (None when not given). While the pool fills these are the inputs themselves.
        """
        if self._lq is None:
            self._allocate(lq, gts, labels, votes)
        self._check(lq, gts, labels, votes)
        b = self.batch_size
        u8 = self.store_uint8
        if labels is not None:
            labels = labels.to(device=self._labels.device, dtype=torch.int64)
        if votes is not None:
            votes = votes.to(device=self._votes.device, dtype=torch.int64)

        if self.ptr < self.queue_size:  # filling: enqueue, train on the current batch as is
            sl = slice(self.ptr, self.ptr + b)
            self._lq[sl] = _to_storage(lq, u8)
            self._gts[sl] = _to_storage(gts, u8)
            if labels is not None:
                self._labels[sl] = labels
            if votes is not None:
                self._votes[sl] = votes
            self.ptr += b
            return lq, gts, labels, votes

        # full: one permutation of the whole pool; its first B slots are dequeued and refilled with the batch
        perm = torch.randperm(self.queue_size, generator=self.generator, device=self._lq.device)
        slots = perm[:b]
        out_lq = _from_storage(self._lq[slots], u8)
        out_gts = _from_storage(self._gts[slots], u8)
        self._lq[slots] = _to_storage(lq, u8)
        self._gts[slots] = _to_storage(gts, u8)
        out_labels = out_votes = None
        if labels is not None:
            out_labels = self._labels[slots]
            self._labels[slots] = labels
        if votes is not None:
            out_votes = self._votes[slots]
            self._votes[slots] = votes
        return out_lq, out_gts, out_labels, out_votes
