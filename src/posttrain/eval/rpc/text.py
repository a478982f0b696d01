"""Word tokens and sentences for the offline scripts (extractive answerer, lexical judge)."""

from __future__ import annotations

import re

# Function words carry no evidence of overlap between a question and a sentence.
_FUNCTION_WORDS = """
    a an the and or but if then than that this these those is are was were be been being
    of in on at to for from by with as into about over under between through during within
    it its they them their we our you your he she his her i me my not no do does did done
    can could should would will may might must shall have has had having which who whom whose
    what when where why how all any both each more most other some such only own same so too
    very just also there here out up down off again further once whether while because"""
STOPWORDS = frozenset(_FUNCTION_WORDS.split())
_WORD = re.compile(r"[a-z0-9]+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


def words(text: str) -> list[str]:
    """Lower-cased alphanumeric tokens, function words dropped."""
    return [w for w in _WORD.findall(text.lower()) if w not in STOPWORDS]


def sentences(text: str) -> list[str]:
    """Sentences split at ., ! or ? followed by space, and at line breaks."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]
