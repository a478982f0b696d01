"""The monitor stage: analysing training logs after (or while) a run writes them.

`hacking` turns rollout logs into the CHERRL reward-hacking signals (reward gap G, shortcut
share M) and locates the operational onset of hacking; `detector` finds that onset from what
a deployed monitor could see (prompt, response, training score), never the hidden true score.
"""
