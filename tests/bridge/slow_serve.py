"""`cds-desktop --serve` on the tiny model made slow, for the shutdown tests (run as a script).

    python tests/bridge/slow_serve.py MODE --serve --port 0 ...

MODE ``slow-load``: loading the model takes ten minutes. MODE ``slow-step``: every UNet call
takes ten minutes and ignores cancellation (like one step of a real model on a CPU).
"""

from __future__ import annotations

import sys
import time

from cds_desktop.engine import models as M
from cds_desktop.serve import serve_main

MODE = sys.argv[1]
_real_load = M.load_model


def _slow_load(spec, **kwargs):
    if MODE == "slow-load":
        time.sleep(600)
    model = _real_load(spec, **kwargs)
    if MODE == "slow-step":
        model.unet.register_forward_pre_hook(lambda module, args: time.sleep(600))
    return model


M.load_model = _slow_load
sys.exit(serve_main(sys.argv[2:]))
