"""Generated sentences in several languages, for the speech set: small grammars with word lists.

Each language has noun phrases (with gender where articles and adjectives agree), third-person verbs,
places, times, numbers and sentence templates (statements, questions, compound sentences, prices and
hours). :func:`sentence` draws one sentence from a seeded ``numpy.random.Generator``.
"""

from __future__ import annotations

import numpy as np

from streamify.data.text.germanic import ENGLISH, GERMAN
from streamify.data.text.grammar import Grammar, pick
from streamify.data.text.romance import FRENCH, ITALIAN, SPANISH

__all__ = ["GRAMMARS", "Grammar", "sentence"]


GRAMMARS: dict[str, Grammar] = {g.language: g for g in (ENGLISH, FRENCH, GERMAN, SPANISH, ITALIAN)}


def _clause(rng: np.random.Generator, g: Grammar) -> str:
    subject = g.noun_phrase(rng, g, pick(rng, g.subjects), True, rng.random() < 0.4)
    if rng.random() < 0.2:
        return f"{subject} {pick(rng, g.intransitive)}"
    obj = g.noun_phrase(rng, g, pick(rng, g.objects), False, rng.random() < 0.5)
    return f"{subject} {pick(rng, g.verbs)} {obj}"


def _capitalize(text: str) -> str:
    for k, ch in enumerate(text):
        if ch.isalpha():
            return text[:k] + ch.upper() + text[k + 1 :]
    return text


def sentence(rng: np.random.Generator, language: str) -> str:
    """One generated sentence in ``language`` (a key of :data:`GRAMMARS`), with its final punctuation."""
    g = GRAMMARS[language]
    form = int(rng.choice(7, p=[0.27, 0.17, 0.17, 0.15, 0.1, 0.04, 0.1]))
    if form == 0:
        text = f"{_clause(rng, g)} {pick(rng, g.places)}."
    elif form == 1:
        text = f"{pick(rng, g.times)}, {_clause(rng, g)}."
    elif form == 2:
        text = f"{_clause(rng, g)}, {pick(rng, g.conjunctions)} {_clause(rng, g)}."
    elif form == 3:
        subject = g.noun_phrase(rng, g, pick(rng, g.subjects), True, False)
        obj = g.noun_phrase(rng, g, pick(rng, g.objects), False, rng.random() < 0.5)
        text = g.question(subject, pick(rng, g.verbs), obj)
    elif form == 4:
        text = f"{_clause(rng, g)} {g.hour(int(rng.integers(1, 13)))}."
    elif form == 5:
        amount = int(rng.choice([rng.integers(2, 100), rng.integers(100, 2000), rng.integers(2000, 100000)]))
        text = g.price(pick(rng, g.objects)[0], amount)
    else:
        text = f"{_clause(rng, g)} {pick(rng, g.times)} {pick(rng, g.places)}."
    return _capitalize(text)
