"""posttrain: post-training systems end to end, from a 2-core CPU to a cluster."""

import os

# Offline always: nothing in posttrain downloads weights or data at run time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

__version__ = "0.1.0"
