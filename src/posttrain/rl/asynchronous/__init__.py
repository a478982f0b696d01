"""Asynchronous RL (GLM-5 / slime, AReaL): rollout workers generate while the trainer trains.

Generation engines hold a copy of the policy (a thread, a process, a Ray actor or an
OpenAI-compatible server); rollout threads turn prompts into scored groups through them and
fill a buffer; the trainer takes batches from the buffer and pushes new weights back. The
staleness gate bounds how far generation may run ahead; `eta = 0` is synchronous training.
"""
