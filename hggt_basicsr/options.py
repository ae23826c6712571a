"""The one declarative option schema: every option section of the package is a dict of :class:`Opt` specs.

A section is checked once, where it is read (a dataset or model ``__init__``, a library entry point); the CLIs do
not check again. Every error is a :class:`~hggt_basicsr.errors.ConfigError` of the form
``<path>.<key>: expected <what is allowed>, got <value>``, and unknown keys are listed with the valid ones.

Example::

    SCHEMA = {'crop_size': Opt('int', None, lo=1), 'use_hflip': Opt('bool', True)}
    values = check_section(opt, SCHEMA, 'datasets.train')
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from hggt_basicsr.errors import ConfigError

__all__ = ['REQUIRED', 'Opt', 'check_section', 'check_unknown', 'load_yaml']


class _Required:
    def __repr__(self) -> str:
        return 'REQUIRED'


#: default of an option that must be given
REQUIRED: Any = _Required()


def _is_num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_list(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str) and len(value) > 0


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


@dataclass(frozen=True)
class Opt:
    """One option: ``kind`` is ``int``, ``num``, ``bool``, ``str``, ``range`` (``[low, high]``, low <= high), ``nums``
    (``length`` numbers), ``names`` (a non-empty list of ``choices``), ``map`` or ``any``; ``default`` applies when the
    key is missing or null (:data:`REQUIRED`: it must be given; ``None``: optional); ``lo`` / ``hi`` bound numbers
    inclusively (both ends of a range, each list entry); ``choices`` are the allowed strings; ``odd`` ints only."""

    kind: str
    default: Any = REQUIRED
    lo: float = -math.inf
    hi: float = math.inf
    choices: tuple[str, ...] | None = None
    length: int | None = None
    odd: bool = False

    def describe(self) -> str:
        """What is allowed, in words."""
        bounds = self._bounds()
        both, each = (f',{w}{bounds}' if bounds else '' for w in (' both', ' each'))
        one_of = f'one of {", ".join(self.choices)}' if self.choices else ''
        return {
            'int': f'{"an odd" if self.odd else "an"} integer{bounds}',
            'num': f'a number{bounds}',
            'bool': 'true or false',
            'str': one_of or 'a string',
            'range': f'[low, high] with low <= high{both}',
            'nums': f'a list of {self.length or "some"} numbers{each}',
            'names': f'a non-empty list of {", ".join(self.choices)}' if self.choices else 'a non-empty list of names',
            'map': 'a mapping',
        }.get(self.kind, 'a value')

    def _bounds(self) -> str:
        if self.lo == -math.inf:
            return '' if self.hi == math.inf else f' <= {_fmt(self.hi)}'
        return f' >= {_fmt(self.lo)}' if self.hi == math.inf else f' in [{_fmt(self.lo)}, {_fmt(self.hi)}]'

    def _num_ok(self, x: Any) -> bool:
        return _is_num(x) and self.lo <= x <= self.hi

    def check(self, value: Any, path: str) -> Any:
        """The checked (normalised: ``num`` -> float, lists -> list) value; ConfigError naming ``path`` otherwise."""
        kind = self.kind
        if kind == 'int':
            ok = isinstance(value, int) and self._num_ok(value) and not (self.odd and value % 2 == 0)
        elif kind == 'num':
            ok = self._num_ok(value)
        elif kind == 'bool':
            ok = isinstance(value, bool)
        elif kind == 'str':
            ok = isinstance(value, str) and (self.choices is None or value in self.choices)
        elif kind in ('range', 'nums'):
            ok = (
                _is_list(value)
                and len(value) == (2 if kind == 'range' else self.length or len(value))
                and all(self._num_ok(x) for x in value)
                and (kind == 'nums' or value[0] <= value[1])
            )
        elif kind == 'names':
            ok = _is_list(value) and all(isinstance(x, str) and x in (self.choices or (x,)) for x in value)
        else:
            ok = kind != 'map' or isinstance(value, Mapping)
        if not ok:
            raise ConfigError(f'{path}: expected {self.describe()}, got {value!r}')
        if kind == 'num':
            return float(value)
        if kind in ('range', 'nums'):
            return [float(x) for x in value]
        return list(value) if kind == 'names' else value


def check_unknown(opt: Mapping, allowed: Iterable[str], where: str) -> None:
    """Reject keys of ``opt`` outside ``allowed``, listing them and the valid ones."""
    allowed = set(allowed)
    unknown = sorted(set(opt) - allowed)
    if unknown:
        raise ConfigError(
            f'{where}: unknown option(s) {", ".join(unknown)}; valid options: {", ".join(sorted(allowed))}'
        )


def check_section(
    opt: Mapping | None, schema: Mapping[str, Opt], where: str, *, ignore: Iterable[str] | None = ()
) -> dict[str, Any]:
    """Check a section against ``schema``; return every schema key with its checked value or its default.

    ``where`` is the section's option path for messages (``datasets.train``; ``''`` for the top level). Keys in
    ``ignore`` are accepted without a check (e.g. basicsr's own loader keys); ``ignore=None`` accepts every other
    key. Raises ConfigError for an unknown key, a missing required key or a bad value, naming ``<where>.<key>``.
    """
    opt = opt or {}
    if not isinstance(opt, Mapping):
        raise ConfigError(f'{where or "options"}: expected a mapping, got {opt!r}')
    prefix = f'{where}.' if where else ''
    if ignore is not None:
        check_unknown(opt, set(schema) | set(ignore), where or 'options')
    out = {}
    for key, spec in schema.items():
        value = opt.get(key)
        if value is not None:
            out[key] = spec.check(value, prefix + key)
        elif spec.default is REQUIRED:
            raise ConfigError(f'{prefix}{key}: required option is missing ({spec.describe()})')
        else:
            out[key] = spec.default
    return out


def load_yaml(path: str | os.PathLike, flag: str = '-opt') -> dict:
    """Read an option file given by ``flag`` with precise errors (missing, folder, not UTF-8, syntax line and
    column, not a mapping), each one ConfigError line."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ConfigError(f'{flag}: option file {path!r} does not exist')
    if os.path.isdir(path):
        raise ConfigError(f'{flag}: {path!r} is a directory, not an option file')
    try:
        with open(path, encoding='utf-8') as handle:
            opt = yaml.safe_load(handle)
    except OSError as exc:
        raise ConfigError(f'{flag}: cannot read {path!r}: {exc.strerror or exc}') from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f'{flag}: cannot read {path!r}: not UTF-8 text ({exc.reason} at byte {exc.start})') from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, 'problem_mark', None)
        where = f' line {mark.line + 1}, column {mark.column + 1}' if mark is not None else ''
        problem = getattr(exc, 'problem', None) or str(exc).splitlines()[0]
        raise ConfigError(f'{path}:{where}: YAML syntax error: {problem}') from exc
    if not isinstance(opt, dict):
        raise ConfigError(f'{path}: expected a mapping of options at the top level, got {type(opt).__name__}')
    return opt
