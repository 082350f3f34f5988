"""``python -m llmguide COMMAND ...``: the command line, also what ``torchrun -m llmguide pretrain`` starts."""

import sys

from llmguide.cli import main

sys.exit(main())
