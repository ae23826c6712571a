"""Installs hggt_basicsr, a plugin for basicsr 1.4.2 (HGGT, CVPR 2023)."""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = {}
exec((HERE / 'hggt_basicsr' / 'version.py').read_text(), VERSION)


def read_requirements() -> list[str]:
    lines = (HERE / 'requirements.txt').read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith('#')]


setup(
    name='hggt_basicsr',
    version=VERSION['__version__'],
    description='HGGT (Human Guided Ground-truth Generation for Realistic Image Super-Resolution) for basicsr 1.4.2',
    long_description=(HERE / 'README.md').read_text() if (HERE / 'README.md').exists() else '',
    long_description_content_type='text/markdown',
    python_requires='>=3.10',  # importlib.metadata.entry_points(group=...)
    packages=find_packages(include=['hggt_basicsr', 'hggt_basicsr.*']),
    include_package_data=True,
    package_data={
        'hggt_basicsr.demo': ['seed_spread.json'],  # hggt demo
        'hggt_basicsr.demo.options': ['*.yml'],
        'hggt_basicsr.annotate': ['static/*'],  # hggt annotate: pages, scripts, style
    },
    install_requires=read_requirements(),
    extras_require={
        'dev': ['pytest>=7', 'ruff>=0.5', 'httpx>=0.27', 'playwright>=1.40'],
        'pyiqa': ['pyiqa>=0.1.13'],
    },
    entry_points={
        'console_scripts': [
            'basicsr = hggt_basicsr.cli.basicsr_cli:main',
            'hggt = hggt_basicsr.cli.hggt:main',
        ],
    },
    classifiers=['Programming Language :: Python :: 3', 'Topic :: Scientific/Engineering :: Image Processing'],
)
