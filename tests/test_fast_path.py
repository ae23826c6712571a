"""Training levers of issue 13 on the CPU: amp (bf16 / fp16), channels_last, torch.compile, fused optimizers, and the
sync-free step (no device-to-host read between print iterations)."""

from __future__ import annotations

import copy
import importlib.util
import logging
import re
import traceback
from pathlib import Path

import pytest
import torch
from basicsr.models import build_model
from test_hggt_model import B, make_batch, make_opt, params_of
from torch.overrides import TorchFunctionMode

import hggt_basicsr  # noqa: F401  (must precede basicsr)
from hggt_basicsr.errors import ConfigError, DataError
from hggt_basicsr.io import load_weights

LABELS = [[0, 1, 3, 1, 2], [0, 2, 1, 3, 2]]


def _model(tmp_path, **train):
    opt = make_opt(tmp_path, 'positive_negative')
    opt['train'].update(train)
    torch.manual_seed(0)
    return build_model(opt)


def _step(model, *, seed: int = 1) -> dict:
    torch.manual_seed(seed)
    model.feed_data(make_batch(LABELS))
    model.optimize_parameters(1)
    return model.get_current_log()


# ---------------------------------------------------------------------------------------------------- defaults
def test_defaults_are_the_plain_fp32_eager_step(tmp_path):
    model = _model(tmp_path)
    assert model.forward_g is model.net_g and model.forward_d is model.net_d
    assert model.amp_dtype is None and model.grad_scalers == {}
    assert model.memory_format is torch.contiguous_format
    assert not model.optimizer_g.defaults.get('fused')


# ---------------------------------------------------------------------------------------------------- amp
def test_bf16_step_is_close_to_fp32_for_the_same_batch(tmp_path, vgg_weights):
    """G, D, perceptual (VGG19 in autocast) and LDL: every logged loss within 5 % (+ 1e-3 absolute) of fp32;
    bf16 keeps 8 mantissa bits."""
    losses = {
        'perceptual_opt': {'type': 'PerceptualLoss', 'layer_weights': {'conv1_2': 0.1, 'conv2_2': 1.0},
                           'vgg_type': 'vgg19', 'perceptual_weight': 1.0, 'style_weight': 0, 'criterion': 'l1'},
        'ldl_opt': {'type': 'L1Loss', 'loss_weight': 1.0},
    }  # fmt: skip
    fp32 = _model(tmp_path, **losses)
    bf16 = _model(tmp_path, amp='bf16', **losses)
    assert all(torch.equal(a, b) for a, b in zip(params_of(fp32.net_g), params_of(bf16.net_g)))
    log32, log16 = _step(fp32), _step(bf16)
    assert bf16.output.dtype == torch.bfloat16 and fp32.output.dtype == torch.float32
    assert set(log32) == set(log16) and {'l_g_percep', 'l_g_ldl', 'l_g_neg', 'l_g_gan'} <= set(log32)
    for key, ref in log32.items():
        assert abs(log16[key] - ref) <= 0.05 * abs(ref) + 1e-3, (key, ref, log16[key])
    assert all(torch.isfinite(p).all() for p in bf16.net_g.parameters())
    assert all(p.dtype == torch.float32 for p in bf16.net_g.parameters())  # master weights stay fp32


def test_fp16_uses_one_grad_scaler_per_optimizer_and_saves_them(tmp_path):
    model = _model(tmp_path, amp='fp16')
    assert set(model.grad_scalers) == {'g', 'd'}
    before = params_of(model.net_g)
    for it in range(1, 9):  # the scaler starts at 2**16: overflowing steps are skipped while the scale shrinks
        log = _step(model, seed=it)
    assert all(torch.isfinite(torch.tensor(v)) for v in log.values())
    assert model.grad_scalers['g'].get_scale() < 2.0**16
    assert any(not torch.equal(a, b) for a, b in zip(before, model.net_g.parameters()))
    state = model.extra_training_state()['grad_scalers']
    assert set(state) == {'g', 'd'} and state['g']['scale'] > 0
    other = _model(tmp_path, amp='fp16')
    optimizers, schedulers = [o.state_dict() for o in model.optimizers], [s.state_dict() for s in model.schedulers]
    other.resume_training({'optimizers': optimizers, 'schedulers': schedulers, **model.extra_training_state()})
    assert other.grad_scalers['g'].state_dict() == model.grad_scalers['g'].state_dict()


# ---------------------------------------------------------------------------------------------------- channels_last
def test_channels_last_outputs_equal_contiguous_ones(tmp_path):
    """Same nets, same batch: channels-last outputs and losses equal the contiguous ones (tolerance 1e-5)."""
    plain = _model(tmp_path)
    cl = _model(tmp_path, channels_last=True)
    weight = next(p for p in cl.net_g.parameters() if p.dim() == 4)
    assert weight.is_contiguous(memory_format=torch.channels_last)
    assert next(p for p in cl.net_g_ema.parameters() if p.dim() == 4).is_contiguous(memory_format=torch.channels_last)
    log_plain, log_cl = _step(plain), _step(cl)
    assert cl.lq.is_contiguous(memory_format=torch.channels_last) and torch.equal(cl.lq, plain.lq)
    assert cl.gt.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(cl.output, plain.output, rtol=1e-5, atol=1e-5)
    assert log_cl == pytest.approx(log_plain, rel=1e-5, abs=1e-6)
    cl.test()
    assert cl.output.shape == plain.output.shape


# ---------------------------------------------------------------------------------------------------- compile
@pytest.mark.parametrize(
    'backend',
    [
        'eager',  # dynamo's graph capture of both nets (~7 s here); the C++ build of inductor is the slow variant
        pytest.param('aot_eager', marks=pytest.mark.slow),
        pytest.param('inductor', marks=pytest.mark.slow),
    ],
)
def test_compile_trains_two_iterations_and_saves_eager_loadable_weights(tmp_path, backend):
    """``compile: {backend: ...}`` trains like the eager nets; the saved state dicts have no ``_orig_mod.`` prefix
    and load into an eager net with ``strict=True``."""
    model = _model(tmp_path, compile={'backend': backend})
    assert model.forward_g is not model.net_g
    ref = _model(tmp_path)
    for it in (1, 2):
        torch.manual_seed(it)
        batch = make_batch(LABELS, seed=it)
        model.feed_data(batch)
        model.optimize_parameters(it)
        torch.manual_seed(it)
        ref.feed_data(batch)
        ref.optimize_parameters(it)
    assert model.forward_g.compiled is not None  # no fallback happened
    assert model.get_current_log() == pytest.approx(ref.get_current_log(), rel=1e-4, abs=1e-5)
    model.save(0, 2)
    saved = torch.load(tmp_path / 'models' / 'net_g_2.pth', weights_only=True)
    assert not any('_orig_mod' in k for k in saved['params'])
    eager = build_model(make_opt(tmp_path, 'positive_negative')).net_g
    load_weights(eager, str(tmp_path / 'models' / 'net_g_2.pth'), param_key='params', strict=True)
    assert all(torch.equal(a, b) for a, b in zip(eager.parameters(), model.net_g.parameters()))
    net_d = build_model(make_opt(tmp_path, 'positive_negative')).net_d
    load_weights(net_d, str(tmp_path / 'models' / 'net_d_2.pth'), param_key='params', strict=True)


def test_compile_failure_falls_back_to_eager_with_one_warning(tmp_path, monkeypatch, caplog):
    def broken_compile(net, **_):
        def run(*args):
            raise RuntimeError('inductor: no C++ compiler\nlong trace...')

        return run

    monkeypatch.setattr(torch, 'compile', broken_compile)
    model = _model(tmp_path, compile=True)
    with caplog.at_level(logging.WARNING, logger='basicsr'):
        _step(model)
        _step(model, seed=2)
    lines = [r.getMessage() for r in caplog.records if 'train.compile' in r.getMessage()]
    assert len(lines) == 2  # one per net (net_g, net_d), once
    assert 'torch.compile of net_g failed (RuntimeError: inductor: no C++ compiler); running it eagerly' in lines[0]
    assert model.forward_g.compiled is None


@pytest.mark.parametrize(
    ('value', 'message'),
    [
        ({'backend': 'nope'}, r"train\.compile\.backend: expected one of .*inductor.*, got 'nope'"),
        ({'mode': 'fast'}, r'train\.compile\.mode: expected one of default, reduce-overhead'),
        ({'modes': 'default'}, r'train\.compile: unknown option\(s\) modes'),
        ('yes', r'train\.compile: expected true, false or a mapping'),
    ],
)
def test_bad_compile_options(tmp_path, value, message):
    with pytest.raises(ConfigError, match=message):
        _model(tmp_path, compile=value)


def test_bad_amp_option(tmp_path):
    with pytest.raises(ConfigError, match=r'train\.amp: expected one of none, bf16, fp16, got True'):
        _model(tmp_path, amp=True)


# ---------------------------------------------------------------------------------------------------- fused
def test_fused_optimizers(tmp_path, caplog, monkeypatch):
    model = _model(tmp_path, fused_optim=True)
    assert model.optimizer_g.defaults['fused'] and model.optimizer_d.defaults['fused']
    _step(model)
    adam = torch.optim.Adam

    def no_fused_here(params, lr, fused=None, **kwargs):
        if fused:
            raise RuntimeError('`fused=True` requires all the params to be floating point Tensors of supported devices')
        return adam(params, lr, **kwargs)

    monkeypatch.setattr(torch.optim, 'Adam', no_fused_here)
    with caplog.at_level(logging.WARNING, logger='basicsr'):
        model = _model(tmp_path, fused_optim=True)
    assert 'train.fused_optim: no fused train.optim_g.type Adam on cpu (`fused=True` requires' in caplog.text
    assert not model.optimizer_g.defaults.get('fused')


# ---------------------------------------------------------------------------------------------------- syncs
#: functions that read tensors which stay on the host whatever the device: the degradation's per-batch uniforms and
#: the crop offset (torch's CPU generator), the Pos label check (the loader's CPU labels) and torch.optim's step
#: counters (CPU tensors unless capturable)
HOST_SIDE = {'_batch_uniforms', 'paired_random_crop_stack', 'sample_positive', '_get_value'}
READS = {'item', 'tolist', 'cpu', 'numpy', '__bool__', '__int__', '__float__', 'nonzero'}


class HostReads(TorchFunctionMode):
    """Records every tensor read that waits for the device on a GPU (``.item()``, ``.cpu()``, ``bool(t)``, ...),
    with the chain of functions of our package, basicsr and torch.optim it came from."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, list[str]]] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, '__name__', '')
        if name in READS:
            chain = [f.name for f in traceback.extract_stack() if re.search(r'basicsr|torch/optim', f.filename)]
            self.calls.append((name, chain))
        return func(*args, **(kwargs or {}))

    def device_reads(self) -> list[tuple[str, list[str]]]:
        return [(name, chain) for name, chain in self.calls if not HOST_SIDE & set(chain)]


@pytest.mark.parametrize('gt_mode', ['positive', 'positive_negative'])
def test_no_device_to_host_read_between_print_iterations(tmp_path, gt_mode):
    """The step (feed_data + optimize_parameters) reads nothing back from the device; get_current_log (basicsr calls
    it every print_freq iterations) reads all losses in one transfer."""
    opt = make_opt(tmp_path, gt_mode, queue_size=2 * B)
    opt['train']['ldl_opt'] = {'type': 'L1Loss', 'loss_weight': 1.0}
    model = build_model(opt)
    labels = [[0, 1, 3, 1, 2], [0, 1, 1, 3, 2]]
    for it in range(1, 4):  # fill the pool, then shuffle from it
        with HostReads() as feed:
            model.feed_data(make_batch(labels, seed=it))
        with HostReads() as step:
            model.optimize_parameters(it)
        assert feed.device_reads() == [] and step.device_reads() == []
        assert feed.calls and step.calls  # the recorder sees the host-side reads
    with HostReads() as log:
        values = model.get_current_log()
    assert [name for name, _ in log.device_reads()] == ['tolist'] and 'l_g_ldl' in values


def test_sync_free_log_equals_basicsr_reduction(tmp_path):
    model = _model(tmp_path)
    _step(model)
    assert all(isinstance(v, torch.Tensor) and not v.requires_grad for v in model.log_dict.values())
    expected = {k: v.item() for k, v in model.log_dict.items()}
    assert model.get_current_log() == expected


def test_device_labels_without_positive_raise_at_the_next_log(tmp_path):
    """Labels already on the device (prefetch_mode cuda) are checked without a sync: the DataError comes with the
    next get_current_log. On the CPU the deferred branch is asked for explicitly."""
    model = build_model(make_opt(tmp_path, 'positive', gan=False))
    model._check_positives(torch.tensor([[0, 1, 3, 1, 2], [0, 1, 2, 2, 2]]), defer=True)
    model.log_dict = {'l_g_pix': torch.tensor(0.5)}
    assert model.get_current_log() == {'l_g_pix': 0.5}
    with HostReads() as reads:
        model._check_positives(torch.tensor([[0, 1, 3, 1, 2], [0, 2, 2, 3, 2]]), defer=True)
    assert reads.device_reads() == []
    with pytest.raises(DataError, match='without a Positive version'):
        model.get_current_log()
    assert model.get_current_log() == {'l_g_pix': 0.5}  # reported once


def test_options_are_copied_not_consumed(tmp_path):
    opt = make_opt(tmp_path, 'positive_negative')
    opt['train'].update(compile={'backend': 'eager'}, amp='bf16')
    snapshot = copy.deepcopy(opt)
    build_model(opt)
    assert opt == snapshot


def test_sync_free_benchmark_runs(capsys):
    """bench/bench_sync_free.py end to end with one short round (the figures come from its full run)."""
    path = Path(__file__).resolve().parents[1] / 'bench' / 'bench_sync_free.py'
    spec = importlib.util.spec_from_file_location('bench_sync_free', path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    result = bench.main(['--iters', '1', '--repeats', '1', '--print-freq', '1'])
    assert set(result['medians']) == {'sync_free', 'per_iter'} and result['ratio'] > 0
    assert 'sync_free / per_iter = ' in capsys.readouterr().out
