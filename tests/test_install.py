"""The installed environment: one OpenCV and one TensorBoard distribution, console scripts, plugin entry."""

from __future__ import annotations

import importlib.metadata as md

import pytest

CV2_DISTS = ('opencv-python', 'opencv-python-headless', 'opencv-contrib-python', 'opencv-contrib-python-headless')
TB_DISTS = ('tensorboard', 'tb-nightly')


def _installed(names: tuple[str, ...]) -> list[str]:
    found = []
    for name in names:
        try:
            md.distribution(name)
        except md.PackageNotFoundError:
            continue
        found.append(name)
    return found


@pytest.mark.parametrize('names', [CV2_DISTS, TB_DISTS], ids=['cv2', 'tensorboard'])
def test_exactly_one_distribution_owns_the_package(names):
    """Two distributions owning the same folder (cv2/, tensorboard/) break the import once one is uninstalled."""
    assert len(_installed(names)) == 1, _installed(names)


def test_console_scripts_are_declared():
    scripts = {ep.name: ep.value for ep in md.entry_points(group='console_scripts') if ep.name in ('basicsr', 'hggt')}
    assert scripts == {'basicsr': 'hggt_basicsr.cli.basicsr_cli:main', 'hggt': 'hggt_basicsr.cli.hggt:main'}


def test_basicsr_is_the_real_release():
    assert md.version('basicsr') == '1.4.2'
