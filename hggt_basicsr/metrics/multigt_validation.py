"""Multi-GT validation: every metric of ``val.metrics`` averaged over an image's positive GTs, then over images.

This is HGGT's Test-100 protocol (CVPR 2023, arXiv 2303.13069) inside basicsr's validation loop. It follows
``SRModel.nondist_validation`` (metric results, best-metric bookkeeping, logging, tensorboard, image saving) and
differs only in the targets: :class:`~hggt_basicsr.data.multigt_dataset.HGGTMultiGTDataset` yields every version
(``gts``) with its label (``labels``), and each metric is the mean over the Positive versions. An image without a
positive is scored against the original; the log says how many were. No-reference metrics (a metric function
without an ``img2`` argument, e.g. ``calculate_niqe``) are computed once per image.

Per-image values go to the log (debug level) and, when images are saved, to
``<visualization>/<dataset>/metrics_<iter>.json`` next to them.
"""

from __future__ import annotations

import inspect
import json
import os
import os.path as osp
from copy import deepcopy
from typing import Any

import numpy as np
import torch
from basicsr.metrics import calculate_metric
from basicsr.utils import get_root_logger, imwrite, tensor2img
from basicsr.utils.registry import METRIC_REGISTRY
from tqdm import tqdm

from hggt_basicsr.labels import LABEL_CODES

_DEVICE_METRICS = ('calculate_lpips', 'calculate_dists', 'calculate_pyiqa')


def positive_indices(labels: torch.Tensor) -> tuple[list[int], bool]:
    """Indices of the Positive versions in a (K+1,) label row, or ``[0]`` (the original) when there is none."""
    idx = [int(i) for i in torch.nonzero(labels == LABEL_CODES['Positive']).flatten()]
    return (idx, False) if idx else ([0], True)


def _is_no_reference(metric_type: str) -> bool:
    try:
        fn = METRIC_REGISTRY.get(metric_type)
    except KeyError:
        return False
    return 'img2' not in inspect.signature(fn).parameters


def _save_path(model, dataset_name: str, img_name: str, current_iter) -> str:
    opt = model.opt
    if opt['is_train']:
        return osp.join(opt['path']['visualization'], img_name, f'{img_name}_{current_iter}.png')
    suffix = opt['val'].get('suffix') or opt['name']
    return osp.join(opt['path']['visualization'], dataset_name, f'{img_name}_{suffix}.png')


def multi_gt_validation(model, dataloader, current_iter, tb_logger, save_img: bool) -> None:
    """basicsr-style validation of ``model`` (``opt``, ``device``, ``feed_data``, ``test``) on a multi-GT
    dataloader of any batch size; ``current_iter`` is the iteration (training) or the run name (``basicsr test``)."""
    logger = get_root_logger()
    dataset_name = dataloader.dataset.opt['name']
    val_opt = model.opt['val']
    metric_opts: dict[str, dict] = val_opt.get('metrics') or {}
    if metric_opts:
        model.metric_results = {name: 0 for name in getattr(model, 'metric_results', metric_opts)}
        model._initialize_best_metric_results(dataset_name)
    prepared = {}
    for name, opt_ in metric_opts.items():
        opt_ = deepcopy(opt_)
        opt_.pop('better', None)  # basicsr's best-metric key; not a metric argument
        if opt_.get('type') in _DEVICE_METRICS and opt_.get('device') is None:
            opt_['device'] = model.device
        prepared[name] = (opt_, _is_no_reference(opt_.get('type', '')))

    per_image: dict[str, dict[str, Any]] = {}
    fallback = []
    pbar = tqdm(total=len(dataloader.dataset), unit='image', disable=not val_opt.get('pbar', False))
    for val_data in dataloader:
        model.feed_data({'lq': val_data['lq']})
        model.test()
        output = model.output.detach().cpu()
        del model.lq, model.output
        for b in range(output.shape[0]):
            img_name = osp.splitext(osp.basename(val_data['lq_path'][b]))[0]
            sr_img = tensor2img([output[b]])
            idx, fell_back = positive_indices(val_data['labels'][b])
            if fell_back:
                fallback.append(img_name)
            gt_imgs = [tensor2img([val_data['gts'][b, i]]) for i in idx]
            if save_img:
                imwrite(sr_img, _save_path(model, dataset_name, img_name, current_iter))
            entry: dict[str, Any] = {'gts': idx}
            for name, (opt_, no_reference) in prepared.items():
                targets = gt_imgs[:1] if no_reference else gt_imgs
                entry[name] = float(np.mean([calculate_metric({'img': sr_img, 'img2': gt}, opt_) for gt in targets]))
                model.metric_results[name] += entry[name]
            per_image[img_name] = entry
            pbar.update(1)
            pbar.set_description(f'Test {img_name}')
    pbar.close()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()

    count = len(per_image)
    if fallback:
        logger.info(
            f'Validation {dataset_name}: {len(fallback)} of {count} image(s) have no positive GT and were scored '
            f'against the original: {", ".join(fallback[:10])}{" ..." if len(fallback) > 10 else ""}'
        )
    if not (metric_opts and count):
        return
    for name in model.metric_results:
        model.metric_results[name] /= count
        model._update_best_metric_result(dataset_name, name, model.metric_results[name], current_iter)
    model._log_validation_metric_values(current_iter, dataset_name, tb_logger)
    for img_name, entry in per_image.items():
        logger.debug(f'{dataset_name} {img_name}: ' + ', '.join(f'{k}={v}' for k, v in entry.items()))
    if save_img:
        path = osp.join(model.opt['path']['visualization'], dataset_name, f'metrics_{current_iter}.json')
        os.makedirs(osp.dirname(path), exist_ok=True)
        record = {'mean': dict(model.metric_results), 'per_image': per_image, 'fallback_to_original': fallback}
        record['protocol'] = 'mean over positive GTs, then over images'
        with open(path, 'w') as f:
            json.dump(record, f, indent=2)
