"""The French, Spanish and Italian grammars (word lists, noun phrases with gender agreement)."""

from __future__ import annotations

import numpy as np

from streamify.data.text.grammar import Grammar, pick

# --- French --------------------------------------------------------------------------------------------------------


def _fr_np(rng: np.random.Generator, g: Grammar, noun: tuple[str, str], subject: bool, adjective: bool) -> str:
    word, gender = noun
    det = pick(
        rng, [{"m": "le", "f": "la"}, {"m": "un", "f": "une"}, {"m": "mon", "f": "ma"}, {"m": "ce", "f": "cette"}]
    )[gender]
    if det in ("le", "la") and word[0] in "aeiouhé":
        det = "l'"
    adj = " " + pick(rng, g.adjectives)[gender] if adjective else ""
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


# --- Spanish -------------------------------------------------------------------------------------------------------


def _es_np(rng: np.random.Generator, g: Grammar, noun: tuple[str, str], subject: bool, adjective: bool) -> str:
    word, gender = noun
    det = pick(
        rng, [{"m": "el", "f": "la"}, {"m": "un", "f": "una"}, {"m": "este", "f": "esta"}, {"m": "mi", "f": "mi"}]
    )[gender]
    adj = " " + pick(rng, g.adjectives)[gender] if adjective else ""
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
    adj = " " + pick(rng, g.adjectives)[gender] if adjective else ""
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
