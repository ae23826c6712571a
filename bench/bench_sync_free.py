"""Benchmark: one HGGT training iteration with the sync-free loss logging vs basicsr's per-iteration ``.item()``.

basicsr's ``reduce_loss_dict`` reads every loss back to the host at every iteration (7 reads for a GAN step with the
negative term), although its train loop only logs every ``print_freq`` iterations. HGGTGANModel keeps the losses as
device tensors (``_log``) and reads them in one transfer in ``get_current_log`` (called at ``print_freq``). Both
variants run the same model, nets and batch, interleaved, in one process:

* ``sync_free``  HGGTGANModel as it is: feed_data + optimize_parameters, ``get_current_log`` every ``--print-freq``;
* ``per_iter``   the same with ``_log`` replaced by basicsr's ``reduce_loss_dict`` (``.item()`` per loss per step).

Reported: median s/iter of each variant over ``--repeats`` rounds of ``--iters`` iterations, and the ratio. On the
CPU a host read costs nothing (no device queue to drain): the ratio is ~1.00 and shows only that the change costs
nothing there; on a GPU each ``.item()`` waits for the queued kernels, so the per-iteration reads serialise the host
with the device (``--device cuda``: the ratio there is the figure that matters; ``bench/gpu_train_check.py`` counts
the syncs per iteration with ``torch.cuda.set_sync_debug_mode``).

Usage: .venv/bin/python bench/bench_sync_free.py [--device cpu] [--batch 2] [--gt 32] [--iters 5] [--repeats 15]

Measured (2 CPU cores shared with other jobs, torch 2.14.1, defaults): sync_free 23.5 / 23.0 / 25.4 ms/iter,
per_iter 22.9 / 23.6 / 25.1 ms/iter: ratio 1.030, 0.975, 1.013 in three runs (no difference on the CPU, as
expected; the GPU figure is for ``--device cuda``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

import hggt_basicsr  # noqa: F401  (must precede basicsr)

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling script, also when a test loads this file
from bench_train_step import base_opt  # noqa: E402


def model_opt(args: argparse.Namespace, tmp: str) -> dict:
    """A tiny positive+negative HGGT GAN configuration: bench_train_step's nets and losses plus the negative term."""
    opt = base_opt(args, tmp)
    opt.update(
        name='bench_sync_free', model_type='HGGTGANModel', gt_mode='positive_negative',
        num_gpu=1 if args.device == 'cuda' else 0, gt_size=args.gt, queue_size=0,
    )  # fmt: skip
    opt['network_g']['scale'] = 4
    opt['train']['neg_opt'] = {'type': 'HGGTNegativeLoss', 'loss_weight': 300}
    return opt


def make_batch(args: argparse.Namespace) -> dict:
    """A collated HGGTDataset batch: the original + 4 versions (one positive, one negative each), identity kernels."""
    g = torch.Generator().manual_seed(0)
    imgs = (torch.rand(args.batch, 5, 3, args.gt, args.gt, generator=g) * 255).round() / 255
    kernel = torch.zeros(args.batch, 3, 3)
    kernel[:, 1, 1] = 1
    return {
        'img_list': imgs,
        'label_list': torch.tensor([[0, 1, 3, 2, 2]] * args.batch),
        'label_num_list': torch.full((args.batch, 5), 3),
        'kernel1': kernel,
    }


def run(model, batch: dict, iters: int, print_freq: int, sync) -> float:
    """s/iter of ``iters`` iterations (feed_data + optimize_parameters, the log read every ``print_freq``)."""
    sync()
    start = time.perf_counter()
    for it in range(1, iters + 1):
        model.feed_data(batch)
        model.optimize_parameters(it)
        if it % print_freq == 0:
            model.get_current_log()
    sync()
    return (time.perf_counter() - start) / iters


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cpu')
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--gt', type=int, default=32)
    parser.add_argument('--feat', type=int, default=16)
    parser.add_argument('--blocks', type=int, default=1)
    parser.add_argument('--iters', type=int, default=5, help='iterations per measurement')
    parser.add_argument('--print-freq', type=int, default=100, help='get_current_log every N iterations')
    parser.add_argument('--repeats', type=int, default=15, help='interleaved measurements of each variant')
    args = parser.parse_args(argv)

    from basicsr.models import build_model

    torch.manual_seed(0)
    batch = make_batch(args)

    def sync() -> None:
        if args.device == 'cuda':
            torch.cuda.synchronize()

    with tempfile.TemporaryDirectory() as tmp:
        model = build_model(model_opt(args, tmp))
        sync_free_log = model._log

        def per_iter_log(loss_dict):  # basicsr's reduction: one .item() per loss, every iteration
            model.log_dict = model.reduce_loss_dict(loss_dict)

        run(model, batch, 2, args.print_freq, sync)  # warm-up (allocator, cuDNN autotune)
        times: dict[str, list[float]] = {'sync_free': [], 'per_iter': []}
        for _ in range(args.repeats):
            for name, log in (('sync_free', sync_free_log), ('per_iter', per_iter_log)):
                model._log = log
                times[name].append(run(model, batch, args.iters, args.print_freq, sync))
    medians = {name: statistics.median(values) for name, values in times.items()}
    ratio = medians['sync_free'] / medians['per_iter']
    print(f'device {args.device}, batch {args.batch}, gt {args.gt}, {args.iters} iters x {args.repeats} repeats')
    for name, value in medians.items():
        print(f'{name:>10}: {value * 1000:8.1f} ms/iter')
    print(f'sync_free / per_iter = {ratio:.3f}')
    return {'medians': medians, 'ratio': ratio}


if __name__ == '__main__':
    main()
