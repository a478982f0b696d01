"""MM-THEBench: hallucinations inside the chain of thought of multimodal reasoning models."""
