"""Generated sentences in several languages, for the speech set: small grammars with word lists.

Each language has noun phrases (with gender where articles and adjectives agree), third-person verbs,
places, times, numbers and sentence templates (statements, questions, compound sentences, prices and
hours). :func:`sentence` draws one sentence from a seeded ``numpy.random.Generator``.
"""

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


def _pick(rng: np.random.Generator, items: list):
    return items[int(rng.integers(len(items)))]


# --- English -------------------------------------------------------------------------------------------------------


def _en_np(rng: np.random.Generator, g: Grammar, noun: tuple[str, str], subject: bool, adjective: bool) -> str:
    det = _pick(rng, ["the", "the", "a", "this", "my", "our", "every"])
    adj = _pick(rng, g.adjectives)["m"] + " " if adjective else ""
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


# --- French --------------------------------------------------------------------------------------------------------


def _fr_np(rng: np.random.Generator, g: Grammar, noun: tuple[str, str], subject: bool, adjective: bool) -> str:
    word, gender = noun
    det = _pick(
        rng, [{"m": "le", "f": "la"}, {"m": "un", "f": "une"}, {"m": "mon", "f": "ma"}, {"m": "ce", "f": "cette"}]
    )[gender]
    if det in ("le", "la") and word[0] in "aeiouhé":
        det = "l'"
    adj = " " + _pick(rng, g.adjectives)[gender] if adjective else ""
    return f"{det}{'' if det.endswith(chr(39)) else ' '}{word}{adj}"


FRENCH = Grammar(
    language="fr",
    subjects=[
        ("professeur", "m"),
        ("boulanger", "m"),
        ("médecin", "m"),
        ("voisine", "f"),
        ("enfant", "m"),
        ("pilote", "m"),
        ("chanteuse", "f"),
        ("peintre", "m"),
        ("infirmière", "f"),
        ("grand-mère", "f"),
        ("capitaine", "m"),
        ("chien", "m"),
        ("chatte", "f"),
        ("jardinier", "m"),
        ("musicienne", "f"),
        ("étudiante", "f"),
        ("reine", "f"),
        ("roi", "m"),
    ],
    objects=[
        ("lettre", "f"),
        ("fenêtre", "f"),
        ("jardin", "m"),
        ("vélo", "m"),
        ("chanson", "f"),
        ("histoire", "f"),
        ("pont", "m"),
        ("pomme", "f"),
        ("panier", "m"),
        ("lampe", "f"),
        ("carte", "f"),
        ("horloge", "f"),
        ("violon", "m"),
        ("tableau", "m"),
        ("billet", "m"),
        ("manteau", "m"),
        ("bateau", "m"),
        ("porte", "f"),
        ("livre", "m"),
        ("tasse", "f"),
    ],
    adjectives=[
        {"m": "vert", "f": "verte"},
        {"m": "petit", "f": "petite"},
        {"m": "grand", "f": "grande"},
        {"m": "ancien", "f": "ancienne"},
        {"m": "lourd", "f": "lourde"},
        {"m": "célèbre", "f": "célèbre"},
        {"m": "étrange", "f": "étrange"},
        {"m": "bleu", "f": "bleue"},
        {"m": "froid", "f": "froide"},
        {"m": "brillant", "f": "brillante"},
        {"m": "tranquille", "f": "tranquille"},
    ],
    verbs=[
        "trouve",
        "ouvre",
        "porte",
        "peint",
        "regarde",
        "construit",
        "nettoie",
        "suit",
        "décrit",
        "vend",
        "achète",
        "dessine",
        "répare",
        "cache",
        "visite",
        "lit",
        "choisit",
        "prépare",
        "cherche",
    ],
    intransitive=[
        "dort",
        "rit doucement",
        "attend un moment",
        "chante",
        "rentre à la maison",
        "travaille tard",
        "sourit",
    ],
    places=[
        "au marché",
        "près de la gare",
        "derrière la vieille église",
        "au bord de la forêt",
        "au deuxième étage",
        "sous le pont",
        "au bord de la mer",
        "dans un petit village",
    ],
    times=["chaque dimanche", "hier", "avant le dîner", "après la pluie", "en hiver", "tard le soir", "demain matin"],
    conjunctions=["et", "mais", "parce que", "alors"],
    noun_phrase=_fr_np,
    question=lambda s, v, o: f"Est-ce que {s} {v} {o} ?",
    hour=lambda n: f"à {n} heures",
    price=lambda o, n: f"Le prix est de {n} euros.",
)

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
        stem = _pick(rng, g.adjectives)["m"]
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

# --- Spanish -------------------------------------------------------------------------------------------------------


def _es_np(rng: np.random.Generator, g: Grammar, noun: tuple[str, str], subject: bool, adjective: bool) -> str:
    word, gender = noun
    det = _pick(
        rng, [{"m": "el", "f": "la"}, {"m": "un", "f": "una"}, {"m": "este", "f": "esta"}, {"m": "mi", "f": "mi"}]
    )[gender]
    adj = " " + _pick(rng, g.adjectives)[gender] if adjective else ""
    return f"{det} {word}{adj}"


SPANISH = Grammar(
    language="es",
    subjects=[
        ("profesor", "m"),
        ("panadero", "m"),
        ("médica", "f"),
        ("vecina", "f"),
        ("niño", "m"),
        ("piloto", "m"),
        ("cantante", "f"),
        ("pintor", "m"),
        ("abuela", "f"),
        ("capitán", "m"),
        ("perro", "m"),
        ("gata", "f"),
        ("caballo", "m"),
        ("jardinero", "m"),
        ("estudiante", "f"),
        ("reina", "f"),
    ],
    objects=[
        ("carta", "f"),
        ("ventana", "f"),
        ("jardín", "m"),
        ("bicicleta", "f"),
        ("canción", "f"),
        ("historia", "f"),
        ("puente", "m"),
        ("manzana", "f"),
        ("cesta", "f"),
        ("lámpara", "f"),
        ("mapa", "m"),
        ("reloj", "m"),
        ("violín", "m"),
        ("cuadro", "m"),
        ("billete", "m"),
        ("abrigo", "m"),
        ("barco", "m"),
        ("puerta", "f"),
        ("libro", "m"),
        ("taza", "f"),
    ],
    adjectives=[
        {"m": "viejo", "f": "vieja"},
        {"m": "nuevo", "f": "nueva"},
        {"m": "pequeño", "f": "pequeña"},
        {"m": "blanco", "f": "blanca"},
        {"m": "rojo", "f": "roja"},
        {"m": "famoso", "f": "famosa"},
        {"m": "extraño", "f": "extraña"},
        {"m": "tranquilo", "f": "tranquila"},
        {"m": "grande", "f": "grande"},
        {"m": "verde", "f": "verde"},
    ],
    verbs=[
        "encuentra",
        "abre",
        "lleva",
        "pinta",
        "mira",
        "construye",
        "limpia",
        "sigue",
        "describe",
        "vende",
        "compra",
        "dibuja",
        "repara",
        "esconde",
        "visita",
        "lee",
        "elige",
        "busca",
    ],
    intransitive=["duerme", "se ríe", "espera un momento", "canta", "vuelve a casa", "trabaja tarde", "sonríe"],
    places=[
        "en el mercado",
        "cerca de la estación",
        "detrás de la iglesia",
        "al borde del bosque",
        "en el segundo piso",
        "debajo del puente",
        "junto al mar",
        "en un pueblo pequeño",
    ],
    times=["cada domingo", "ayer", "antes de la cena", "después de la lluvia", "en invierno", "por la noche", "mañana"],
    conjunctions=["y", "pero", "porque", "así que"],
    noun_phrase=_es_np,
    question=lambda s, v, o: f"¿Por qué {v} {s} {o}?",
    hour=lambda n: f"a las {n}",
    price=lambda o, n: f"El precio es de {n} euros.",
)

# --- Italian -------------------------------------------------------------------------------------------------------


def _it_np(rng: np.random.Generator, g: Grammar, noun: tuple[str, str], subject: bool, adjective: bool) -> str:
    word, gender = noun
    kind = int(rng.integers(3))
    if kind == 0:  # definite
        if word[0] in "aeiou":
            det = "l'"
        elif gender == "f":
            det = "la "
        elif word.startswith(("s", "z")) and word[1] not in "aeiou":
            det = "lo "
        else:
            det = "il "
    elif kind == 1:  # indefinite
        det = ("un'" if word[0] in "aeiou" else "una ") if gender == "f" else "un "
    else:
        det = "questa " if gender == "f" else "questo "
        if word[0] in "aeiou":
            det = "quest'"
    adj = " " + _pick(rng, g.adjectives)[gender] if adjective else ""
    return f"{det}{word}{adj}"


ITALIAN = Grammar(
    language="it",
    subjects=[
        ("maestro", "m"),
        ("fornaio", "m"),
        ("dottoressa", "f"),
        ("vicina", "f"),
        ("bambino", "m"),
        ("pilota", "m"),
        ("cantante", "f"),
        ("pittore", "m"),
        ("nonna", "f"),
        ("capitano", "m"),
        ("cane", "m"),
        ("gatta", "f"),
        ("cavallo", "m"),
        ("giardiniere", "m"),
        ("studentessa", "f"),
        ("regina", "f"),
    ],
    objects=[
        ("lettera", "f"),
        ("finestra", "f"),
        ("giardino", "m"),
        ("bicicletta", "f"),
        ("canzone", "f"),
        ("storia", "f"),
        ("ponte", "m"),
        ("mela", "f"),
        ("cesta", "f"),
        ("lampada", "f"),
        ("mappa", "f"),
        ("orologio", "m"),
        ("violino", "m"),
        ("quadro", "m"),
        ("biglietto", "m"),
        ("cappotto", "m"),
        ("barca", "f"),
        ("porta", "f"),
        ("libro", "m"),
        ("tazza", "f"),
    ],
    adjectives=[
        {"m": "vecchio", "f": "vecchia"},
        {"m": "nuovo", "f": "nuova"},
        {"m": "piccolo", "f": "piccola"},
        {"m": "bianco", "f": "bianca"},
        {"m": "rosso", "f": "rossa"},
        {"m": "famoso", "f": "famosa"},
        {"m": "strano", "f": "strana"},
        {"m": "tranquillo", "f": "tranquilla"},
        {"m": "grande", "f": "grande"},
        {"m": "verde", "f": "verde"},
    ],
    verbs=[
        "trova",
        "apre",
        "porta",
        "dipinge",
        "guarda",
        "costruisce",
        "pulisce",
        "segue",
        "descrive",
        "vende",
        "compra",
        "disegna",
        "ripara",
        "nasconde",
        "visita",
        "legge",
        "sceglie",
        "cerca",
    ],
    intransitive=[
        "dorme",
        "ride piano",
        "aspetta un momento",
        "canta",
        "torna a casa",
        "lavora fino a tardi",
        "sorride",
    ],
    places=[
        "al mercato",
        "vicino alla stazione",
        "dietro la vecchia chiesa",
        "al margine del bosco",
        "al secondo piano",
        "sotto il ponte",
        "in riva al mare",
        "in un piccolo paese",
    ],
    times=[
        "ogni domenica",
        "ieri",
        "prima di cena",
        "dopo la pioggia",
        "in inverno",
        "tardi la sera",
        "domani mattina",
    ],
    conjunctions=["e", "ma", "perché", "quindi"],
    noun_phrase=_it_np,
    question=lambda s, v, o: f"Perché {s} {v} {o}?",
    hour=lambda n: f"alle {n}",
    price=lambda o, n: f"Il prezzo è di {n} euro.",
)

GRAMMARS: dict[str, Grammar] = {g.language: g for g in (ENGLISH, FRENCH, GERMAN, SPANISH, ITALIAN)}


def _clause(rng: np.random.Generator, g: Grammar) -> str:
    subject = g.noun_phrase(rng, g, _pick(rng, g.subjects), True, rng.random() < 0.4)
    if rng.random() < 0.2:
        return f"{subject} {_pick(rng, g.intransitive)}"
    obj = g.noun_phrase(rng, g, _pick(rng, g.objects), False, rng.random() < 0.5)
    return f"{subject} {_pick(rng, g.verbs)} {obj}"


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
        text = f"{_clause(rng, g)} {_pick(rng, g.places)}."
    elif form == 1:
        text = f"{_pick(rng, g.times)}, {_clause(rng, g)}."
    elif form == 2:
        text = f"{_clause(rng, g)}, {_pick(rng, g.conjunctions)} {_clause(rng, g)}."
    elif form == 3:
        subject = g.noun_phrase(rng, g, _pick(rng, g.subjects), True, False)
        obj = g.noun_phrase(rng, g, _pick(rng, g.objects), False, rng.random() < 0.5)
        text = g.question(subject, _pick(rng, g.verbs), obj)
    elif form == 4:
        text = f"{_clause(rng, g)} {g.hour(int(rng.integers(1, 13)))}."
    elif form == 5:
        amount = int(rng.choice([rng.integers(2, 100), rng.integers(100, 2000), rng.integers(2000, 100000)]))
        text = g.price(_pick(rng, g.objects)[0], amount)
    else:
        text = f"{_clause(rng, g)} {_pick(rng, g.times)} {_pick(rng, g.places)}."
    return _capitalize(text)
