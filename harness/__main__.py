import sys

from xentcheck.cli import main

sys.exit(main())
