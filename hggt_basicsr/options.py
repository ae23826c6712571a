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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hggt_basicsr.errors import ConfigError

__all__ = ['REQUIRED', 'Opt', 'check_section', 'check_unknown']


class _Required:
    def __repr__(self) -> str:
        return 'REQUIRED'


#: default of an option that must be given
REQUIRED: Any = _Required()


def _is_num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class Opt:
    """One option.

    Attributes:
        kind: ``int``, ``num``, ``bool``, ``str``, ``range`` (``[low, high]`` with low <= high), ``nums`` (a list of
            ``length`` numbers), ``names`` (a non-empty list of strings from ``choices``), ``map`` (a mapping) or
            ``any``.
        default: the value when the key is missing or null (:data:`REQUIRED`: it must be given). ``None`` keeps
            the option optional.
        lo, hi: inclusive bounds of numbers (of both ends of a range, of each list entry).
        choices: allowed strings (``str``, ``names``).
        length: length of a ``nums`` list.
        odd: an ``int`` must be odd.
    """

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
        if self.kind == 'int':
            return f'{"an odd" if self.odd else "an"} integer{bounds}'
        if self.kind == 'num':
            return f'a number{bounds}'
        if self.kind == 'bool':
            return 'true or false'
        if self.kind == 'str':
            return f'one of {", ".join(self.choices)}' if self.choices else 'a string'
        if self.kind == 'range':
            return f'[low, high] with low <= high{bounds.replace(" in", ", both in")}'
        if self.kind == 'nums':
            return f'a list of {self.length or "some"} numbers{bounds.replace(" in", ", each in")}'
        if self.kind == 'names':
            return f'a non-empty list of {", ".join(self.choices)}' if self.choices else 'a non-empty list of names'
        if self.kind == 'map':
            return 'a mapping'
        return 'a value'

    def _bounds(self) -> str:
        if self.lo == -math.inf and self.hi == math.inf:
            return ''
        if self.hi == math.inf:
            return f' >= {_fmt(self.lo)}'
        if self.lo == -math.inf:
            return f' <= {_fmt(self.hi)}'
        return f' in [{_fmt(self.lo)}, {_fmt(self.hi)}]'

    def _in_bounds(self, x: float) -> bool:
        return self.lo <= x <= self.hi

    def check(self, value: Any, path: str) -> Any:
        """The checked (normalised) value; ConfigError naming ``path`` otherwise."""
        kind = self.kind
        ok = True
        if kind == 'int':
            ok = isinstance(value, int) and not isinstance(value, bool) and self._in_bounds(value)
            ok = ok and not (self.odd and value % 2 == 0)
        elif kind == 'num':
            ok = _is_num(value) and self._in_bounds(value)
            value = float(value) if ok else value
        elif kind == 'bool':
            ok = isinstance(value, bool)
        elif kind == 'str':
            ok = isinstance(value, str) and (self.choices is None or value in self.choices)
        elif kind in ('range', 'nums'):
            ok = (
                isinstance(value, Sequence)
                and not isinstance(value, str)
                and len(value) == (2 if kind == 'range' else self.length or len(value))
                and len(value) > 0
                and all(_is_num(x) and self._in_bounds(x) for x in value)
                and (kind == 'nums' or value[0] <= value[1])
            )
            value = [float(x) for x in value] if ok else value
        elif kind == 'names':
            ok = (
                isinstance(value, Sequence)
                and not isinstance(value, str)
                and len(value) > 0
                and all(isinstance(x, str) and (self.choices is None or x in self.choices) for x in value)
            )
            value = list(value) if ok else value
        elif kind == 'map':
            ok = isinstance(value, Mapping)
        if not ok:
            raise ConfigError(f'{path}: expected {self.describe()}, got {value!r}')
        return value


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def check_unknown(opt: Mapping, allowed: Iterable[str], where: str) -> None:
    """Reject keys of ``opt`` outside ``allowed``, listing them and the valid ones."""
    allowed = set(allowed)
    unknown = sorted(set(opt) - allowed)
    if unknown:
        raise ConfigError(
            f'{where}: unknown option(s) {", ".join(unknown)}; valid options: {", ".join(sorted(allowed))}'
        )


def check_section(
    opt: Mapping | None,
    schema: Mapping[str, Opt],
    where: str,
    *,
    ignore: Iterable[str] | None = (),
) -> dict[str, Any]:
    """Check a section against ``schema`` and return every schema key with its value or default.

    Args:
        opt: the section (``None`` is an empty section).
        schema: key -> :class:`Opt`.
        where: the section's option path for messages (``datasets.train``); ``''`` for the top level.
        ignore: keys accepted without a check (e.g. basicsr's own loader keys); ``None`` accepts every other key.

    Raises:
        ConfigError: an unknown key, a missing required key, or a bad value, naming ``<where>.<key>``.
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
        if value is None:
            if spec.default is REQUIRED:
                raise ConfigError(f'{prefix}{key}: required option is missing ({spec.describe()})')
            out[key] = spec.default
        else:
            out[key] = spec.check(value, prefix + key)
    return out
