import sys

from tuban.cli import main

sys.exit(main())
