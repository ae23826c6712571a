"""Tiny basicsr experiments for CPU tests: generated PNG pairs and option dicts for built-in models."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import yaml


def write_paired_pngs(
    root: Path, *, count: int = 4, size: int = 32, scale: int = 4, seed: int = 0
) -> tuple[Path, Path]:
    """``root/gt/img_i.png`` (size x size) and ``root/lq/img_i.png`` (size/scale), smooth random images."""
    rng = np.random.default_rng(seed)
    gt_dir, lq_dir = root / 'gt', root / 'lq'
    gt_dir.mkdir(parents=True, exist_ok=True)
    lq_dir.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        small = rng.integers(0, 256, (size // 4, size // 4, 3), dtype=np.uint8)
        gt = cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)
        lq = cv2.resize(gt, (size // scale, size // scale), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(gt_dir / f'img_{i}.png'), gt)
        cv2.imwrite(str(lq_dir / f'img_{i}.png'), lq)
    return gt_dir, lq_dir


def tiny_srgan_opt(data_root: Path, *, name: str = 'tiny_srgan', total_iter: int = 4, checkpoint_freq: int = 2) -> dict:
    """basicsr's built-in SRGANModel with a tiny RRDBNet and UNet discriminator on the CPU, with EMA."""
    gt_dir, lq_dir = data_root / 'gt', data_root / 'lq'
    paired = {
        'type': 'PairedImageDataset',
        'dataroot_gt': str(gt_dir),
        'dataroot_lq': str(lq_dir),
        'io_backend': {'type': 'disk'},
    }
    return {
        'name': name,
        'model_type': 'SRGANModel',
        'scale': 4,
        'num_gpu': 0,
        'manual_seed': 0,
        'datasets': {
            'train': {
                **paired,
                'name': 'tiny_train',
                'gt_size': 16,
                'use_hflip': True,
                'use_rot': False,
                'num_worker_per_gpu': 0,
                'batch_size_per_gpu': 2,
                'dataset_enlarge_ratio': 1,
                'prefetch_mode': None,
            },
            'val': {**paired, 'name': 'tiny_val'},
        },
        'network_g': {
            'type': 'RRDBNet',
            'num_in_ch': 3,
            'num_out_ch': 3,
            'num_feat': 8,
            'num_block': 1,
            'num_grow_ch': 4,
        },
        'network_d': {'type': 'UNetDiscriminatorSN', 'num_in_ch': 3, 'num_feat': 8, 'skip_connection': True},
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
        'train': {
            'ema_decay': 0.9,
            'optim_g': {'type': 'Adam', 'lr': 1e-3, 'weight_decay': 0, 'betas': [0.9, 0.99]},
            'optim_d': {'type': 'Adam', 'lr': 1e-3, 'weight_decay': 0, 'betas': [0.9, 0.99]},
            'scheduler': {'type': 'MultiStepLR', 'milestones': [3], 'gamma': 0.5},
            'total_iter': total_iter,
            'warmup_iter': -1,
            'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0, 'reduction': 'mean'},
            'gan_opt': {
                'type': 'GANLoss',
                'gan_type': 'vanilla',
                'real_label_val': 1.0,
                'fake_label_val': 0.0,
                'loss_weight': 0.1,
            },
            'net_d_iters': 1,
            'net_d_init_iters': 0,
        },
        'val': {
            'val_freq': 1000,
            'save_img': False,
            'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 0, 'test_y_channel': False}},
        },
        'logger': {
            'print_freq': 1,
            'save_checkpoint_freq': checkpoint_freq,
            'use_tb_logger': False,
            'wandb': {'project': None},
        },
        'dist_params': {'backend': 'gloo', 'port': 29500},
    }


def write_yaml(path: Path, opt: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(opt, sort_keys=False))
    return path
