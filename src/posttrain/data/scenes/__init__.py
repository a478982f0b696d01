"""MM-THEBench's embedded items: rendered scenes whose exact graph verifies every reasoning step.

graph (the scene records), render (PIL drawing, the graph in a PNG text chunk), facts (the
shipped fact table), steps (claim sentences), questions (questions with gold steps), splits
(train / test / ood data directories), user_data (a user's JSONL and ScienceQA / MathVista
files as items).
"""
