"""Text environments for agentic (multi-turn) RL."""
