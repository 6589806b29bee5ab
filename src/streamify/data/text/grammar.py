"""What a language's sentence generator is made of: word lists and how they are assembled."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Grammar:
    """Word lists of one language and how its sentences are assembled."""

    language: str
    subjects: list[tuple[str, str]]  # people and animals (singular), with gender
    objects: list[tuple[str, str]]  # things (singular), with gender
    adjectives: list[dict[str, str]]  # gender -> form
    verbs: list[str]  # transitive, third person singular present
    intransitive: list[str]  # third person singular present, with what follows
    places: list[str]
    times: list[str]
    conjunctions: list[str]
    noun_phrase: Callable[[np.random.Generator, Grammar, tuple[str, str], bool, bool], str]
    question: Callable[[str, str, str], str]
    hour: Callable[[int], str]
    price: Callable[[str, int], str]


def pick(rng: np.random.Generator, items: list):
    """One item of ``items``, drawn from ``rng``."""
    return items[int(rng.integers(len(items)))]
