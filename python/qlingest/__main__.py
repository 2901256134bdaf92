import sys

from qlingest.cli import main

sys.exit(main())
