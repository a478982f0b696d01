"""Supervised fine-tuning: the SFT stage (`posttrain sft`) and the cached warm start built on it."""
