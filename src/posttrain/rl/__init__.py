"""Reinforcement learning: samples, rollout, losses, and the training engine."""
