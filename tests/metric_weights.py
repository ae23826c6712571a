"""Test helper: random-weight backbone files for LPIPS (AlexNet) and DISTS (VGG16) under a TORCH_HOME.

The files have torchvision's names and key layout (``features.*`` only, the classifiers are not needed), so the
real loading code of :mod:`hggt_basicsr.metrics` runs without any download.
"""

from __future__ import annotations

from pathlib import Path

import torch


def write_random_backbones(torch_home: Path, *, seed: int = 0) -> dict[str, Path]:
    """Write ``hub/checkpoints/{alexnet-owt-7be5be79,vgg16-397923af}.pth`` with random features; return the paths."""
    from torchvision.models.vgg import cfgs, make_layers

    from hggt_basicsr.metrics.dists_metric import VGG16_FILE
    from hggt_basicsr.metrics.lpips_metric import ALEXNET_FILE

    torch.manual_seed(seed)
    folder = Path(torch_home) / 'hub' / 'checkpoints'
    folder.mkdir(parents=True, exist_ok=True)
    alex = torch.nn.Sequential(  # torchvision AlexNet.features layout
        torch.nn.Conv2d(3, 64, 11, 4, 2), torch.nn.ReLU(), torch.nn.MaxPool2d(3, 2),
        torch.nn.Conv2d(64, 192, 5, padding=2), torch.nn.ReLU(), torch.nn.MaxPool2d(3, 2),
        torch.nn.Conv2d(192, 384, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(384, 256, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(256, 256, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(3, 2),
    )  # fmt: skip
    vgg = make_layers(cfgs['D'])
    paths = {'alexnet': folder / ALEXNET_FILE, 'vgg16': folder / VGG16_FILE}
    torch.save({f'features.{k}': v for k, v in alex.state_dict().items()}, paths['alexnet'])
    torch.save({f'features.{k}': v for k, v in vgg.state_dict().items()}, paths['vgg16'])
    return paths
