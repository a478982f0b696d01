"""posttrain: post-training systems end to end, from a 2-core CPU to a cluster.

Importing posttrain changes no environment variable: the `posttrain` command (cli.main) and
the test suite turn on HF_HUB_OFFLINE and HF_HUB_DISABLE_TELEMETRY; library users decide.
"""

__version__ = "0.1.0"
