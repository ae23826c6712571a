"""``python -m hggt_basicsr.train -opt X.yml [...]``: same as ``basicsr train``."""

import sys

from hggt_basicsr.cli.basicsr_cli import main

if __name__ == '__main__':
    sys.exit(main(['train', *sys.argv[1:]]))
