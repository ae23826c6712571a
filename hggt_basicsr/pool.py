"""Training-pair pool: shuffles degraded pairs across iterations (Real-ESRGAN / HGGT ``_dequeue_and_enqueue``).

Upstream semantics, for a pool of ``queue_size`` Q and batch size B:

* while the pool is not full, the current batch is appended and returned unchanged;
* once full, one ``randperm(Q)`` is drawn; its first B slots are returned as this iteration's batch and the
  current batch is written into those B slots. (Upstream permutes the whole pool in memory and then swaps the
  first B slots; picking the B slots through the permutation gives the same distribution while moving only
  2·B entries per iteration instead of Q.)

The pool carries the LQ batch, the whole GT stack (all versions of a group) and optionally the per-version labels
and vote counts, aligned by slot; it is allocated on the first call, on the inputs' device.

Memory: images are stored as uint8 (``round(x * 255)``) and returned as ``float32 / 255``, lossless for 8-bit data:
HGGT GTs are 8-bit PNGs (crops / flips keep the values) and the LQ of :mod:`hggt_basicsr.degradations` is rounded
to the 8-bit grid as its last step. (Bit-exact on CPU; on CUDA, where torch divides by a scalar through its
reciprocal, a value may differ by one float32 ulp.) The pool thus needs a quarter of upstream's float32 memory:
Q=144, 5 GTs at 256², LQ 64², labels + votes: 143 MB instead of 573 MB (bench/bench_pool_memory.py).
``store_uint8=False`` stores float32, for data off the 8-bit grid (e.g. USM-sharpened targets).

Exact resume: :meth:`TrainingPairPool.state_dict` / :meth:`~TrainingPairPool.load_state_dict` carry the contents
(CPU tensors, ``weights_only``-loadable); the model saves them in the training state with ``train.save_pool``.
"""

from __future__ import annotations

import math

import torch

from hggt_basicsr.errors import ConfigError

__all__ = ['TrainingPairPool', 'pool_nbytes']

_FIELDS = ('lq', 'gts', 'labels', 'votes')


def pool_nbytes(
    queue_size: int, lq_shape: tuple[int, ...], gts_shape: tuple[int, ...], *, labels: bool = True, uint8: bool = True
) -> int:
    """Bytes of a pool of ``queue_size`` slots of one LQ ``lq_shape`` and one GT stack ``gts_shape`` (N, 3, H, W)
    (no batch dim), plus int64 labels and votes of length N when ``labels``."""
    images = (math.prod(lq_shape) + math.prod(gts_shape)) * (1 if uint8 else 4)
    return queue_size * (images + (2 * 8 * gts_shape[0] if labels else 0))


class TrainingPairPool:
    """Pool of (lq, gts, labels, votes) training pairs with upstream semantics; see the module docstring.

    ``queue_size`` (option ``queue_size``) must be a multiple of ``batch_size`` (the per-process batch,
    ``datasets.train.batch_size_per_gpu``); ``generator``: an optional generator on the inputs' device for the
    permutations (torch's RNG otherwise).
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
        self._store: list[torch.Tensor | None] | None = None  # one tensor per field, None for a field never given

    @property
    def is_full(self) -> bool:
        return self.ptr == self.queue_size

    @property
    def nbytes(self) -> int:
        """Bytes held by the pool tensors (0 before the first call)."""
        return sum(t.numel() * t.element_size() for t in self._store or () if t is not None)

    def state_dict(self) -> dict:
        """The pool's contents and fill pointer, as CPU tensors and plain values (``weights_only``-loadable)."""
        return {
            'queue_size': self.queue_size,
            'batch_size': self.batch_size,
            'store_uint8': self.store_uint8,
            'ptr': self.ptr,
            'store': None if self._store is None else [None if t is None else t.cpu() for t in self._store],
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict` output (the tensors move to the next batch's device on the next call);
        ValueError when the saved pool's geometry differs from this one's."""
        mine = (self.queue_size, self.batch_size, self.store_uint8)
        theirs = (state['queue_size'], state['batch_size'], state['store_uint8'])
        if mine != theirs:
            raise ValueError(
                f'TrainingPairPool: saved pool (queue_size, batch_size, store_uint8) = {theirs} differs from {mine}'
            )
        self.ptr = int(state['ptr'])
        self._store = None if state['store'] is None else [None if t is None else t.clone() for t in state['store']]

    def _encode(self, i: int, x: torch.Tensor | None) -> torch.Tensor | None:
        if x is None or i >= 2:  # labels / votes: int64 on the pool's device
            return None if x is None else x.to(device=self._store[i].device, dtype=torch.int64)
        if self.store_uint8 and x.is_floating_point():
            return (x.detach() * 255.0).round_().clamp_(0, 255).to(torch.uint8)
        return x.detach()

    def _check(self, batch: tuple[torch.Tensor | None, ...]) -> None:
        if self._store is not None and self._store[0].device != batch[0].device:  # restored on the CPU
            self._store = [None if t is None else t.to(batch[0].device) for t in self._store]
        if self._store is None:
            img = torch.uint8 if self.store_uint8 else torch.float32
            self._store = [
                None if x is None else torch.empty((self.queue_size, *x.shape[1:]), dtype=dtype, device=x.device)
                for x, dtype in zip(batch, (img, img, torch.int64, torch.int64))
            ]
        b = batch[0].shape[0]
        if b != self.batch_size or batch[1].shape[0] != b:
            raise ValueError(
                f'TrainingPairPool(batch_size={self.batch_size}) got lq batch {b} and gts batch {batch[1].shape[0]}; '
                'the training dataloader must drop its last incomplete batch'
            )
        for name, x, store in zip(_FIELDS, batch, self._store):
            if (x is None) != (store is None):
                raise ValueError('TrainingPairPool: labels / votes must be given on every call or on none')
            if x is not None and tuple(x.shape[1:]) != tuple(store.shape[1:]):
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
        """Push the current batch and return the batch to train on, of the same shapes.

        ``lq`` (B, 3, h, w) and ``gts`` (B, N, 3, H, W) (or (B, 3, H, W)) float in [0, 1]; optional ``labels`` and
        ``votes`` (B, N) int per version (column 0 = original). Returns images as float32, labels / votes as int64
        (None when not given); while the pool fills these are the inputs themselves.
        """
        batch = (lq, gts, labels, votes)
        self._check(batch)
        encoded = [self._encode(i, x) for i, x in enumerate(batch)]
        if self.ptr < self.queue_size:  # filling: enqueue, train on the current batch as is
            for store, x in zip(self._store, encoded):
                if store is not None:
                    store[self.ptr : self.ptr + self.batch_size] = x
            self.ptr += self.batch_size
            return lq, gts, encoded[2], encoded[3]
        # full: one permutation of the whole pool; its first B slots are dequeued and refilled with the batch
        slots = torch.randperm(self.queue_size, generator=self.generator, device=self._store[0].device)[: lq.shape[0]]
        out = []
        for store, x in zip(self._store, encoded):
            if store is None:
                out.append(None)
                continue
            taken = store[slots]  # a copy (advanced indexing)
            out.append(taken / 255.0 if taken.dtype == torch.uint8 else taken)  # uint8 / float -> float32
            store[slots] = x
        return tuple(out)
