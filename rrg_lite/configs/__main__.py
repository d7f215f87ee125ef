"""``python -m rrg_lite.configs [name]``: the path of a shipped Accelerate config (all of them without a name)."""
import sys

from . import ACCELERATE_CONFIGS, accelerate_config

names = sys.argv[1:] or list(ACCELERATE_CONFIGS)
try:
    for name in names:
        print(accelerate_config(name))
except ValueError as e:
    sys.exit(str(e))
