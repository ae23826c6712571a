"""Tests of hggt_basicsr.pool.TrainingPairPool: upstream semantics, alignment of all fields, uint8 storage."""

from __future__ import annotations

import pytest
import torch

import hggt_basicsr  # noqa: F401
from hggt_basicsr.errors import ConfigError
from hggt_basicsr.pool import TrainingPairPool, pool_nbytes

B, N, Q = 2, 3, 6


def _batch(ids: list[int], n: int = N, size: int = 8):
    """Images encode the sample id (lq = id/255, version v = (id + v)/255); labels id*10+v, votes id."""
    idt = torch.tensor(ids)
    lq = (idt.float() / 255).view(-1, 1, 1, 1).expand(-1, 3, size // 2, size // 2).clone()
    ver = torch.arange(n)
    gts = ((idt.view(-1, 1) + ver).float() / 255).view(-1, n, 1, 1, 1).expand(-1, n, 3, size, size).clone()
    labels = idt.view(-1, 1) * 10 + ver
    votes = idt.view(-1, 1).expand(-1, n).clone()
    return lq, gts, labels, votes


def _ids(lq, gts, labels, votes):
    """Decode the ids of a returned batch and check that every field belongs to the same sample."""
    ids = (lq[:, 0, 0, 0] * 255).round().long()
    assert torch.all((lq * 255).round().long() == ids.view(-1, 1, 1, 1))
    ver = torch.arange(gts.shape[1])
    assert torch.all((gts * 255).round().long() == (ids.view(-1, 1) + ver).view(-1, gts.shape[1], 1, 1, 1))
    assert torch.equal(labels, ids.view(-1, 1) * 10 + ver)
    assert torch.equal(votes, ids.view(-1, 1).expand_as(votes))
    return ids.tolist()


def test_queue_size_must_be_multiple_of_batch():
    with pytest.raises(ConfigError, match='queue_size'):
        TrainingPairPool(10, 4)
    with pytest.raises(ConfigError, match='queue_size'):
        TrainingPairPool(0, 4)
    TrainingPairPool(12, 4)


def test_fill_then_shuffle_swap_keeps_fields_aligned():
    torch.manual_seed(0)
    pool = TrainingPairPool(Q, B)
    next_id = 0
    seen_after_full = []
    pooled = set()
    for it in range(40):
        ids = list(range(next_id, next_id + B))
        next_id += B
        inputs = _batch(ids)
        out = pool(*inputs)
        if it < Q // B:  # filling: the current batch is returned as is
            assert all(o is i for o, i in zip(out, inputs))
            pooled.update(ids)
            continue
        got = _ids(*out)
        assert out[0].dtype == torch.float32 and out[2].dtype == torch.int64
        assert not set(got) & set(ids), 'the current batch goes into the pool, not into this iteration'
        assert set(got) <= pooled
        pooled.difference_update(got)
        pooled.update(ids)
        assert len(pooled) == Q  # nothing lost, nothing duplicated
        seen_after_full.extend(got)
    assert len(seen_after_full) == len(set(seen_after_full))
    assert pool.is_full


def test_shuffle_draws_from_the_whole_pool():
    torch.manual_seed(1)
    pool = TrainingPairPool(Q, B)
    for k in range(Q // B):
        pool(*_batch([2 * k, 2 * k + 1]))
    counts = torch.zeros(Q)
    for _ in range(300):
        lq, gts, labels, votes = pool(*_batch([250, 251]))  # re-push fixed ids; first round returns 0..5
        for i in _ids(lq, gts, labels, votes):
            if i < Q:
                counts[i] += 1
    assert torch.all(counts == 1)  # each original entry leaves exactly once


def test_uint8_round_trip_is_exact_for_8bit_data():
    torch.manual_seed(2)
    pool = TrainingPairPool(4, 2)
    data = [(torch.randint(0, 256, (2, 3, 4, 4)).float() / 255, torch.randint(0, 256, (2, 5, 3, 8, 8)).float() / 255)]
    data += [(torch.randint(0, 256, (2, 3, 4, 4)).float() / 255, torch.randint(0, 256, (2, 5, 3, 8, 8)).float() / 255)]
    for lq, gts in data:
        pool(lq, gts)
    stored = {
        tuple(x.flatten()[:4].tolist()): (x, g)
        for x, g in zip(torch.cat([d[0] for d in data]), torch.cat([d[1] for d in data]))
    }
    returned = 0
    for _ in range(6):
        lq, gts, labels, votes = pool(*data[0])
        assert labels is None and votes is None
        for x, g in zip(lq, gts):
            ref_x, ref_g = stored[tuple(x.flatten()[:4].tolist())]
            assert torch.equal(x, ref_x) and torch.equal(g, ref_g)
            returned += 1
    assert returned == 12
    assert pool.nbytes == 4 * (3 * 4 * 4 + 5 * 3 * 8 * 8)  # uint8, no labels


def test_float_storage_keeps_non_8bit_values_and_single_gt():
    pool = TrainingPairPool(2, 1, store_uint8=False)
    a = (torch.full((1, 3, 2, 2), 0.123456), torch.full((1, 3, 4, 4), 0.654321))
    b = (torch.full((1, 3, 2, 2), 0.5), torch.full((1, 3, 4, 4), 0.25))
    pool(*a)
    pool(*b)
    torch.manual_seed(0)
    lq, gt, labels, votes = pool(*b)
    assert gt.shape == (1, 3, 4, 4) and labels is None
    assert torch.equal(lq, a[0]) or torch.equal(lq, b[0])
    assert torch.equal(gt, a[1]) if torch.equal(lq, a[0]) else torch.equal(gt, b[1])
    assert pool.nbytes == 2 * 4 * (3 * 2 * 2 + 3 * 4 * 4)


def test_bad_calls():
    pool = TrainingPairPool(4, 2)
    pool(*_batch([0, 1])[:2])
    with pytest.raises(ValueError, match='batch'):
        pool(*_batch([0, 1, 2])[:2])
    with pytest.raises(ValueError, match='labels'):
        pool(*_batch([0, 1]))
    with pytest.raises(ValueError, match='shape'):
        pool(*_batch([0, 1], size=16)[:2])


def test_pool_nbytes_upstream_sizes():
    u8 = pool_nbytes(144, (3, 64, 64), (5, 3, 256, 256))
    f32 = pool_nbytes(144, (3, 64, 64), (5, 3, 256, 256), uint8=False)
    assert f32 / u8 > 3.99
    assert pool_nbytes(144, (3, 64, 64), (5, 3, 256, 256), labels=False, uint8=False) - 144 * 4 * 3 * 64 * 64 == (
        144 * 5 * 3 * 256 * 256 * 4
    )  # upstream's queue_gts: 566 MB


def test_state_dict_round_trip_continues_identically(tmp_path):
    """A pool restored from its (weights_only-loaded) state returns the same batches under the same RNG."""
    torch.manual_seed(0)
    pool = TrainingPairPool(Q, B)
    for i in range(Q // B + 1):
        pool(*_batch([2 * i, 2 * i + 1]))
    torch.save(pool.state_dict(), tmp_path / 'pool.pt')
    restored = TrainingPairPool(Q, B)
    restored.load_state_dict(torch.load(tmp_path / 'pool.pt', weights_only=True))
    assert restored.ptr == pool.ptr == Q and restored.nbytes == pool.nbytes
    for i in range(3):
        batch = _batch([100 + 2 * i, 101 + 2 * i])
        torch.manual_seed(i)
        expected = pool(*batch)
        torch.manual_seed(i)
        got = restored(*batch)
        assert _ids(*got) == _ids(*expected)
    empty = TrainingPairPool(Q, B)
    empty.load_state_dict(TrainingPairPool(Q, B).state_dict())
    assert empty.ptr == 0 and empty.nbytes == 0
    with pytest.raises(ValueError, match=r'saved pool \(queue_size, batch_size, store_uint8\) = \(6, 2, True\)'):
        TrainingPairPool(2 * Q, B).load_state_dict(pool.state_dict())
