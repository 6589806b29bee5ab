"""Generated sentences: every language, deterministic, varied enough for thousands of sentences."""

import numpy as np
import pytest

from streamify.data.text import GRAMMARS, sentence


@pytest.mark.parametrize("language", sorted(GRAMMARS))
def test_sentences_are_deterministic_varied_and_punctuated(language: str) -> None:
    first = [sentence(np.random.default_rng(7), language) for _ in range(3)]
    assert first[0] == first[1] == first[2]
    rng = np.random.default_rng(0)
    many = [sentence(rng, language) for _ in range(2000)]
    assert len(set(many)) > 1800, "the grammar must give thousands of different sentences"
    assert all(s[-1] in ".?" and s[0].upper() == s[0] for s in many)
    assert any(s.endswith("?") for s in many), "questions are part of the prosody variety"
    assert any(any(c.isdigit() for c in s) for s in many), "numbers (hours, prices) are read too"


def test_languages_differ() -> None:
    words = {}
    for lang in GRAMMARS:
        rng = np.random.default_rng(1)
        words[lang] = {w.strip(".,?¿").lower() for _ in range(200) for w in sentence(rng, lang).split() if w.isalpha()}
    for a in GRAMMARS:
        for b in GRAMMARS:
            if a < b:
                assert len(words[a] & words[b]) < 0.25 * min(len(words[a]), len(words[b])), (a, b)
