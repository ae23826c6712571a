"""Benchmark: one training step of HGGTGANModel (positive_negative) vs basicsr's SRGANModel, same nets and batch.

What HGGT adds to an SRGAN step is the per-sample target gather and the negative term (paper Eq. 3-5); both models
run the same generator, discriminator, L1 and GAN losses. Reported (median over interleaved repeats, CPU):

* ``srgan``      basicsr SRGANModel: feed_data(lq, gt) + optimize_parameters;
* ``hggt``       HGGTGANModel on the same lq and a 5-version GT stack: target selection + optimize_parameters
                 (target: at most +10 % over ``srgan``);
* ``hggt+data``  HGGTGANModel.feed_data (one-stage degradation of the 2x-size original, crop, pool) + step, for
                 reference: the degradation is work any Real-ISR model does (Real-ESRGAN does it in feed_data too).

Usage: .venv/bin/python bench/bench_train_step.py [--batch 12] [--gt 128] [--feat 32] [--blocks 2] [--repeats 5]

Measured (2 shared CPU cores, torch 2.14.1, quiet machine): ``--batch 12 --gt 256 --repeats 5``: srgan 10.93 s,
hggt 11.22 s (+2.7 %), hggt+data 11.51 s (+5.3 %); ``--batch 12 --gt 128 --repeats 7``: srgan 1.717 s, hggt 1.767 s
(+2.9 %), hggt+data 1.800 s (+4.8 %).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time

import torch

import hggt_basicsr  # noqa: F401  (must precede basicsr)


def base_opt(args: argparse.Namespace, tmp: str) -> dict:
    return {
        'name': 'bench',
        'scale': 4,
        'num_gpu': 0,
        'dist': False,
        'rank': 0,
        'world_size': 1,
        'is_train': True,
        'network_g': {
            'type': 'RRDBPSNet',
            'num_feat': args.feat,
            'num_block': args.blocks,
            'num_grow_ch': args.feat // 2,
        },  # fmt: skip
        'network_d': {'type': 'UNetDiscriminatorSN', 'num_in_ch': 3, 'num_feat': args.feat, 'skip_connection': True},
        'path': {'models': tmp, 'training_states': tmp},
        'datasets': {'train': {'batch_size_per_gpu': args.batch, 'phase': 'train'}},
        'train': {
            'ema_decay': 0.999,
            'optim_g': {'type': 'Adam', 'lr': 1e-4, 'betas': [0.9, 0.99]},
            'optim_d': {'type': 'Adam', 'lr': 1e-4, 'betas': [0.9, 0.99]},
            'scheduler': {'type': 'MultiStepLR', 'milestones': [10**6], 'gamma': 0.5},
            'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0},
            'gan_opt': {'type': 'GANLoss', 'gan_type': 'vanilla', 'loss_weight': 0.1},
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--batch', type=int, default=12)
    parser.add_argument('--gt', type=int, default=128, help='GT patch side (LQ is gt / 4); the paper uses 256')
    parser.add_argument('--feat', type=int, default=32, help='generator / discriminator width')
    parser.add_argument('--blocks', type=int, default=2, help='RRDB blocks')
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--threads', type=int, default=0, help='torch threads (0: leave as is)')
    args = parser.parse_args()
    from basicsr.models import build_model  # after hggt_basicsr (compat fixes)

    if args.threads:
        torch.set_num_threads(args.threads)
    tmp = tempfile.mkdtemp()
    b, gt = args.batch, args.gt

    torch.manual_seed(0)
    srgan = build_model({**copy.deepcopy(base_opt(args, tmp)), 'model_type': 'SRGANModel'})
    hopt = {
        **copy.deepcopy(base_opt(args, tmp)),
        'model_type': 'HGGTGANModel',
        'gt_mode': 'positive_negative',
        'gt_size': gt,
        'queue_size': 2 * b,
    }
    hopt['train']['neg_opt'] = {'type': 'HGGTNegativeLoss', 'loss_weight': 300}
    torch.manual_seed(0)
    hggt = build_model(hopt)
    hggt.net_g.load_state_dict(srgan.net_g.state_dict())
    hggt.net_d.load_state_dict(srgan.net_d.state_dict())

    g = torch.Generator().manual_seed(0)
    gts = (torch.rand(b, 5, 3, gt, gt, generator=g) * 255).round() / 255
    labels = torch.tensor([[0, 1, 3, 1, 2], [0, 2, 2, 3, 1], [0, 1, 1, 1, 1]] * (b // 3 + 1))[:b]
    votes = torch.tensor([[3, 2, 3, 3, 2]] * b)
    lq = torch.rand(b, 3, gt // 4, gt // 4, generator=g)
    gt0 = gts[:, 0].contiguous()
    data_gts = (torch.rand(b, 5, 3, 2 * gt, 2 * gt, generator=g) * 255).round() / 255
    kernel = torch.zeros(b, 9, 9)
    kernel[:, 4, 4] = 1
    batch = {'img_list': data_gts, 'label_list': labels, 'label_num_list': votes, 'kernel1': kernel}

    def step_srgan(it: int) -> None:
        srgan.feed_data({'lq': lq, 'gt': gt0})
        srgan.optimize_parameters(it)

    def step_hggt(it: int) -> None:
        hggt.lq, hggt.gts, hggt.labels, hggt.votes = lq, gts, labels, votes
        hggt._select_targets()  # the last part of feed_data
        hggt.optimize_parameters(it)

    def step_hggt_data(it: int) -> None:
        hggt.feed_data(batch)
        hggt.optimize_parameters(it)

    cases = {'srgan': step_srgan, 'hggt': step_hggt, 'hggt+data': step_hggt_data}
    times: dict[str, list[float]] = {k: [] for k in cases}
    for fn in cases.values():  # warm-up (and fill the pool)
        for it in (1, 2, 3):
            fn(it)
    for r in range(args.repeats):
        for name, fn in cases.items():
            start = time.perf_counter()
            fn(4 + r)
            times[name].append(time.perf_counter() - start)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(
        f'batch {b}, GT {gt}x{gt} (LQ {gt // 4}), RRDBPSNet feat {args.feat} blocks {args.blocks}, '
        f'UNetDiscriminatorSN feat {args.feat}, threads {torch.get_num_threads()}, median of {args.repeats}'
    )
    for name in cases:
        print(
            f'  {name:10s} {med[name] * 1000:9.1f} ms/step  ({(med[name] / med["srgan"] - 1) * 100:+6.1f} % vs srgan)'
        )


if __name__ == '__main__':
    main()
