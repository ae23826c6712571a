"""The ``basicsr`` console script: ``basicsr train|test -opt X.yml``, upstream basicsr's pipelines with plugins.

Runs ``train_pipeline`` / ``test_pipeline`` unchanged, with every option upstream accepts (``--auto_resume``,
``--debug``, ``--launcher``, ``--local_rank`` / ``--local-rank``, ``--force_yml``), after checking up front what
basicsr would otherwise report as a traceback deep inside a run: the YAML itself (missing, unreadable, syntax error
with its line), the plugins (entry-point group ``basicsr.plugins`` and the YAML's ``plugins: [...]`` modules), every
registered type the YAML names (listing close names), the datasets' ``dataroot*`` paths and, unless resuming, the
pretrained weights. The options of the plugin's own classes are checked by those classes, once. The experiment root
(``experiments/``, ``results/``) is the current directory or ``--root DIR``. Bad input: one line on stderr, exit 2.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from importlib.metadata import entry_points

import torch.distributed as dist
from basicsr.test import test_pipeline
from basicsr.train import train_pipeline
from basicsr.utils import logger as basicsr_logger
from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, LOSS_REGISTRY, METRIC_REGISTRY, MODEL_REGISTRY

from hggt_basicsr.errors import ConfigError, HGGTError
from hggt_basicsr.options import load_yaml

ENTRY_POINT_GROUP = 'basicsr.plugins'
REGISTRIES = dict(
    model=MODEL_REGISTRY, arch=ARCH_REGISTRY, dataset=DATASET_REGISTRY, loss=LOSS_REGISTRY, metric=METRIC_REGISTRY
)
_BASICSR_LOG_FORMAT = '%(asctime)s %(levelname)s: %(message)s'  # basicsr.utils.logger.get_root_logger's format


def _parser(command: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f'basicsr {command}',
        description=f'Run basicsr {command}_pipeline with hggt_basicsr and other installed plugins registered.',
    )
    parser.add_argument('-opt', required=True, metavar='YML', help='path to the option YAML file')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none', help='job launcher')
    parser.add_argument('--auto_resume', action='store_true', help='resume from the newest valid training state')
    parser.add_argument('--debug', action='store_true', help='debug mode (prefix name with debug_)')
    parser.add_argument('--local_rank', type=int, default=0, help='set by torch.distributed.launch')
    parser.add_argument('--force_yml', nargs='+', default=None, metavar='K=V', help='override options, e.g. a:b=1')
    parser.add_argument('--root', default=None, help='experiment root (default: the current directory)')
    return parser


def normalize_argv(argv: Sequence[str]) -> list[str]:
    """``--local-rank N`` / ``--local-rank=N`` (torch.distributed.launch) -> ``--local_rank``; ``--opt`` -> ``-opt``."""
    out = []
    for arg in argv:
        if arg == '--local-rank' or arg.startswith('--local-rank='):
            arg = arg.replace('--local-rank', '--local_rank', 1)
        elif arg == '--opt' or arg.startswith('--opt='):
            arg = arg.replace('--opt', '-opt', 1)
        out.append(arg)
    return out


def import_plugins(opt: dict, source: str) -> list[str]:
    """Import the ``basicsr.plugins`` entry points and the YAML's ``plugins`` modules; return what is loaded."""
    loaded = ['hggt_basicsr']
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            entry.load()
        except Exception as exc:  # noqa: BLE001 - reported with the plugin's name
            raise ConfigError(
                f'plugin {entry.name!r} ({entry.value}, entry point {ENTRY_POINT_GROUP}) failed: {exc}'
            ) from exc
        loaded.append(entry.value)
    plugins = opt.get('plugins') or []
    plugins = [plugins] if isinstance(plugins, str) else plugins
    if not isinstance(plugins, list) or not all(isinstance(p, str) for p in plugins):
        raise ConfigError(f'{source}: plugins: expected a list of module names, got {plugins!r}')
    for name in plugins:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ConfigError(f'{source}: plugins: cannot import module {name!r} ({exc})') from exc
        loaded.append(name)
    return loaded


def _typed_entries(opt: dict) -> Iterator[tuple[str, str, str]]:
    """(option path, registry kind, type name) for every registered type a YAML names."""
    if isinstance(opt.get('model_type'), str):
        yield 'model_type', 'model', opt['model_type']
    for key, value in opt.items():
        if key.startswith('network_') and isinstance(value, dict) and 'type' in value:
            yield f'{key}.type', 'arch', value['type']
    for phase, dataset in (opt.get('datasets') or {}).items():
        if isinstance(dataset, dict) and 'type' in dataset:
            yield f'datasets.{phase}.type', 'dataset', dataset['type']
    for key, value in (opt.get('train') or {}).items():
        if key.endswith('_opt') and isinstance(value, dict) and 'type' in value:
            yield f'train.{key}.type', 'loss', value['type']
    for key, value in ((opt.get('val') or {}).get('metrics') or {}).items():
        if isinstance(value, dict) and 'type' in value:
            yield f'val.metrics.{key}.type', 'metric', value['type']


def check_registered_types(opt: dict, source: str) -> None:
    """Every type named in the YAML resolves in basicsr's registries (or their ``_basicsr`` fallback)."""
    for path, kind, name in _typed_entries(opt):
        registry = REGISTRIES[kind]
        if not isinstance(name, str) or (name not in registry and f'{name}_basicsr' not in registry):
            close = difflib.get_close_matches(str(name), list(registry.keys()), n=4, cutoff=0.5)
            hint = f'; did you mean {", ".join(close)}?' if close else f'; known: {", ".join(sorted(registry.keys()))}'
            raise ConfigError(f'{source}: {path}: unknown {kind} type {name!r}{hint}')


def check_paths(opt: dict, source: str, *, resuming: bool) -> None:
    """Every ``dataroot*`` of every dataset, and the pretrained weights when not resuming, exist on disk."""
    for phase, dataset in (opt.get('datasets') or {}).items():
        for key, value in dataset.items() if isinstance(dataset, dict) else ():
            if key.startswith('dataroot') and isinstance(value, str) and not os.path.exists(os.path.expanduser(value)):
                raise ConfigError(f'{source}: datasets.{phase}.{key}: no such file or folder {value!r}')
    paths = opt.get('path') or {}
    if resuming or paths.get('resume_state'):
        return
    for key, value in paths.items():
        if (
            key.startswith('pretrain_network')
            and isinstance(value, str)
            and not os.path.isfile(os.path.expanduser(value))
        ):
            raise ConfigError(f'{source}: path.{key}: no such weights file {value!r}')


def prepare(command: str, argv: Sequence[str]) -> tuple[str, list[str]]:
    """Validate arguments and YAML, import plugins; returns (root path, argv for basicsr's parse_options)."""
    argv = normalize_argv(argv)
    args = _parser(command).parse_args(argv)
    opt = load_yaml(args.opt)
    import_plugins(opt, args.opt)
    check_registered_types(opt, args.opt)
    check_paths(opt, args.opt, resuming=args.auto_resume)
    passthrough, skip_next = [], False
    for arg in argv:  # basicsr's own parser does not know --root
        if not (skip_next or arg == '--root' or arg.startswith('--root=')):
            passthrough.append(arg)
        skip_next = arg == '--root'
    return os.path.abspath(args.root or os.getcwd()), passthrough


def reset_basicsr_logger() -> None:
    """Detach basicsr's root-logger handlers and mark it uninitialised, around each run: basicsr initialises it once
    per process, so a second run in the same process (tests, the demo) would log to the first run's file."""
    logger = logging.getLogger('basicsr')
    for handler in list(logger.handlers):
        if getattr(handler.formatter, '_fmt', None) == _BASICSR_LOG_FORMAT:  # only get_root_logger's handlers
            logger.removeHandler(handler)
            handler.close()
    basicsr_logger.initialized_logger.pop('basicsr', None)


def main(argv: Sequence[str] | None = None) -> int:
    """``basicsr train|test -opt X.yml [...]``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    usage = 'usage: basicsr {train,test} -opt X.yml [--auto_resume] [--debug] [--launcher ...] [--force_yml ...]'
    if not argv or argv[0] in ('-h', '--help'):
        print(usage)
        print('\nRun `basicsr train --help` or `basicsr test --help` for the options.')
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command not in ('train', 'test'):
        print(f'basicsr: error: unknown command {command!r} (choose train or test)\n{usage}', file=sys.stderr)
        return 2
    old_argv = sys.argv
    try:
        root, passthrough = prepare(command, rest)
        sys.argv = [f'basicsr {command}', *passthrough]
        reset_basicsr_logger()
        (train_pipeline if command == 'train' else test_pipeline)(root)
    except HGGTError as exc:
        print(f'basicsr {command}: error: {exc}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f'basicsr {command}: interrupted; resume with --auto_resume', file=sys.stderr)
        return 130
    finally:
        sys.argv = old_argv
        reset_basicsr_logger()
        if dist.is_available() and dist.is_initialized():
            # basicsr never tears DDP down; a gloo group left to interpreter exit can abort a rank at shutdown
            dist.destroy_process_group()
    return 0


if __name__ == '__main__':
    sys.exit(main())
