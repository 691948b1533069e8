"""``python -m inception_resnet``: the same as the ``inception-resnet`` command."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
