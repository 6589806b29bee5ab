"""The English and German grammars (word lists, noun phrases with articles and cases)."""

from __future__ import annotations

import numpy as np

from streamify.data.text.grammar import Grammar, pick

# --- English -------------------------------------------------------------------------------------------------------


def _en_np(rng: np.random.Generator, g: Grammar, noun: tuple[str, str], subject: bool, adjective: bool) -> str:
    det = pick(rng, ["the", "the", "a", "this", "my", "our", "every"])
    adj = pick(rng, g.adjectives)["m"] + " " if adjective else ""
    phrase = f"{det} {adj}{noun[0]}"
    if det == "a" and phrase[2] in "aeiou":
        phrase = "an" + phrase[1:]
    return phrase


ENGLISH = Grammar(
    language="en",
    subjects=[
        (w, "m")
        for w in [
            "teacher",
            "farmer",
            "doctor",
            "child",
            "neighbour",
            "pilot",
            "baker",
            "student",
            "singer",
            "painter",
            "driver",
            "sailor",
            "gardener",
            "musician",
            "writer",
            "engineer",
            "nurse",
            "grandmother",
            "captain",
            "dog",
            "cat",
            "horse",
            "fox",
            "bird",
            "king",
            "queen",
        ]
    ],
    objects=[
        (w, "n")
        for w in [
            "letter",
            "window",
            "garden",
            "bicycle",
            "song",
            "story",
            "river",
            "bridge",
            "apple",
            "basket",
            "lamp",
            "map",
            "clock",
            "violin",
            "picture",
            "ticket",
            "coat",
            "boat",
            "kitchen",
            "door",
            "mountain",
            "road",
            "candle",
            "envelope",
            "piano",
            "cup",
            "book",
            "wheel",
        ]
    ],
    adjectives=[
        {"m": w}
        for w in [
            "old",
            "new",
            "small",
            "large",
            "quiet",
            "bright",
            "green",
            "yellow",
            "heavy",
            "gentle",
            "broken",
            "famous",
            "wooden",
            "strange",
            "beautiful",
            "distant",
            "warm",
            "cold",
            "simple",
            "careful",
        ]
    ],
    verbs=[
        "finds",
        "opens",
        "carries",
        "paints",
        "watches",
        "remembers",
        "builds",
        "cleans",
        "follows",
        "describes",
        "sells",
        "buys",
        "draws",
        "repairs",
        "hides",
        "visits",
        "reads",
        "borrows",
        "chooses",
        "answers",
    ],
    intransitive=[
        "sleeps",
        "laughs quietly",
        "waits for a while",
        "sings softly",
        "walks home",
        "runs away",
        "works late",
        "smiles",
        "listens carefully",
    ],
    places=[
        "in the morning market",
        "near the station",
        "behind the old church",
        "at the edge of the forest",
        "on the second floor",
        "under the bridge",
        "by the sea",
        "in a small village",
        "across the street",
    ],
    times=[
        "every Sunday",
        "yesterday",
        "before dinner",
        "after the rain",
        "in winter",
        "late at night",
        "this afternoon",
        "once a year",
        "tomorrow morning",
    ],
    conjunctions=["and", "but", "because", "while", "so"],
    noun_phrase=_en_np,
    question=lambda s, v, o: f"Why does {s} {_en_base(v)} {o}?",
    hour=lambda n: f"at {n} o'clock",
    price=lambda o, n: f"The {o} costs {n} dollars.",
)


def _en_base(verb: str) -> str:
    """Infinitive of a third-person English verb of the list (finds -> find, carries -> carry, watches -> watch)."""
    if verb.endswith("ies"):
        return verb[:-3] + "y"
    if verb.endswith(("ches", "shes", "sses", "xes")):
        return verb[:-2]
    return verb[:-1]


# --- German --------------------------------------------------------------------------------------------------------

_DE_ARTICLES = {
    True: {"m": "der", "f": "die", "n": "das"},  # nominative
    False: {"m": "den", "f": "die", "n": "das"},  # accusative
}


def _de_np(rng: np.random.Generator, g: Grammar, noun: tuple[str, str], subject: bool, adjective: bool) -> str:
    word, gender = noun
    det = _DE_ARTICLES[subject][gender]
    adj = ""
    if adjective:
        stem = pick(rng, g.adjectives)["m"]
        adj = stem + ("en" if (gender == "m" and not subject) else "e") + " "
    return f"{det} {adj}{word}"


GERMAN = Grammar(
    language="de",
    subjects=[
        ("Lehrer", "m"),
        ("Bäcker", "m"),
        ("Ärztin", "f"),
        ("Nachbarin", "f"),
        ("Kind", "n"),
        ("Pilot", "m"),
        ("Sängerin", "f"),
        ("Maler", "m"),
        ("Großmutter", "f"),
        ("Kapitän", "m"),
        ("Hund", "m"),
        ("Katze", "f"),
        ("Pferd", "n"),
        ("Gärtner", "m"),
        ("Studentin", "f"),
        ("König", "m"),
    ],
    objects=[
        ("Brief", "m"),
        ("Fenster", "n"),
        ("Garten", "m"),
        ("Fahrrad", "n"),
        ("Lied", "n"),
        ("Geschichte", "f"),
        ("Brücke", "f"),
        ("Apfel", "m"),
        ("Korb", "m"),
        ("Lampe", "f"),
        ("Karte", "f"),
        ("Uhr", "f"),
        ("Geige", "f"),
        ("Bild", "n"),
        ("Mantel", "m"),
        ("Boot", "n"),
        ("Tür", "f"),
        ("Buch", "n"),
        ("Tasse", "f"),
    ],
    adjectives=[
        {"m": w}
        for w in [
            "alt",
            "neu",
            "klein",
            "groß",
            "ruhig",
            "hell",
            "grün",
            "gelb",
            "schwer",
            "sanft",
            "fremd",
            "schön",
            "warm",
            "kalt",
        ]
    ],
    verbs=[
        "findet",
        "öffnet",
        "trägt",
        "malt",
        "beobachtet",
        "baut",
        "putzt",
        "beschreibt",
        "verkauft",
        "kauft",
        "zeichnet",
        "repariert",
        "versteckt",
        "besucht",
        "liest",
        "wählt",
        "sucht",
    ],
    intransitive=[
        "schläft",
        "lacht leise",
        "wartet eine Weile",
        "singt",
        "geht nach Hause",
        "arbeitet lange",
        "lächelt",
    ],
    places=[
        "auf dem Markt",
        "am Bahnhof",
        "hinter der alten Kirche",
        "am Rand des Waldes",
        "im zweiten Stock",
        "unter der Brücke",
        "am Meer",
        "in einem kleinen Dorf",
    ],
    times=[
        "jeden Sonntag",
        "gestern",
        "vor dem Abendessen",
        "nach dem Regen",
        "im Winter",
        "spät am Abend",
        "morgen früh",
    ],
    conjunctions=["und", "aber", "denn", "doch"],
    noun_phrase=_de_np,
    question=lambda s, v, o: f"{v.capitalize()} {s} {o}?",
    hour=lambda n: f"um {n} Uhr",
    price=lambda o, n: f"Der Preis beträgt {n} Euro.",
)
