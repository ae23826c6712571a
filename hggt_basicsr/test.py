"""``python -m hggt_basicsr.test -opt X.yml [...]``: same as ``basicsr test``."""

import sys

from hggt_basicsr.cli.basicsr_cli import main

if __name__ == '__main__':
    sys.exit(main(['test', *sys.argv[1:]]))
