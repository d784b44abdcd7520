import sys

from pyminidocker.cli import main

sys.exit(main())
