"""`python -m raytune_chat._cli` runs the `raytune-chat` command."""

import sys

from raytune_chat._cli import main

sys.exit(main())
