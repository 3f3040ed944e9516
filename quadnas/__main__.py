import sys

from quadnas.cli import main

sys.exit(main())
