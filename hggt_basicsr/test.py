"""``python -m hggt_basicsr.test -opt X.yml [...]``: same as ``basicsr test``."""

import sys

from hggt_basicsr.cli.basicsr_cli import test_main

if __name__ == '__main__':
    sys.exit(test_main())
