"""A seeded synthetic story world for story reward modelling (StoryReward / StoryRMB).

StoryRMB scores a reward model on instances of one prompt, one chosen story and three
rejected ones; StoryReward trains a Bradley-Terry reward model on chosen/rejected story
pairs. Both build rejected stories from good ones: a story for a different premise
(back-generation mismatch), rewriting degradations, and continuations that contradict
earlier facts. Without human stories or an LLM we write the good stories from templates
over made-up premises, and degrade them the same ways.

Length is controlled: every candidate, chosen or rejected, is fitted (by adding, dropping
and re-wording sentences) to its own target word count from one range, and in pairs and
benchmark instances the chosen story's rank among the targets is balanced, so "pick the
longest" scores chance and a reward model has to find the flaw itself; the distinct-word
count follows length and stays near chance too (measure both with the `length` and
`vocabulary` scorers of `posttrain.eval`). The generator knows what it broke, so `flaws`
is an oracle that names the flaws in a text built from this world's templates.

Modules, in the order they build on each other:

- `routes`: ROUTES (construction route -> the dimension it harms) and DIMENSIONS
- `pools`: the world's ingredients (name syllables, traits, roles, settings, goals, ...)
- `templates`: PARTS, the sentence templates by kind, the cliché and contradiction lines
- `world`: Premise, StoryWorldConfig, make_premises, made-up names, word_count and
  distinct_words
- `writing`: StoryLine, Story, write_story and fitting a story to a length
- `rejections`: Rejected, reject and the degradation of each route
- `oracle`: flaws, the held-out judge of texts built from the templates
- `build`: preference_pairs, benchmark_instances, candidate_pool, build_story_data
"""

from __future__ import annotations

from posttrain.data.stories.build import (
    benchmark_instances,
    build_story_data,
    candidate_pool,
    preference_pairs,
)
from posttrain.data.stories.oracle import flaws
from posttrain.data.stories.rejections import Rejected, reject
from posttrain.data.stories.routes import DIMENSIONS, ROUTES
from posttrain.data.stories.templates import PARTS
from posttrain.data.stories.world import (
    Premise,
    StoryWorldConfig,
    distinct_words,
    make_premises,
    word_count,
)
from posttrain.data.stories.writing import Story, StoryLine, write_story

__all__ = [
    "DIMENSIONS",
    "PARTS",
    "ROUTES",
    "Premise",
    "Rejected",
    "Story",
    "StoryLine",
    "StoryWorldConfig",
    "benchmark_instances",
    "build_story_data",
    "candidate_pool",
    "distinct_words",
    "flaws",
    "make_premises",
    "preference_pairs",
    "reject",
    "word_count",
    "write_story",
]
