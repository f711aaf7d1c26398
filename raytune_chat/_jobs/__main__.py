"""``python -m raytune_chat._jobs`` is ``raytune-chat submit`` (jobs/submit.sh calls it)."""

import sys

from raytune_chat._jobs import main

sys.exit(main())
