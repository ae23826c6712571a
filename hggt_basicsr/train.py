"""``python -m hggt_basicsr.train -opt X.yml [...]``: same as ``basicsr train``."""

import sys

from hggt_basicsr.cli.basicsr_cli import train_main

if __name__ == '__main__':
    sys.exit(train_main())
