"""Word tables and phrase helpers: turning plain text into short concept phrases.

:func:`key_phrases` cuts a text into runs of content words between stop words
and punctuation; :func:`guess_kind` guesses a phrase's concept kind from a small
lexicon (scene words, sound words, speech words, ``-ing`` verbs). The fallback
bank (:mod:`vidsense.concepts.bank`) and the LLM-answer parser
(:mod:`vidsense.concepts.generate`) use them.

This module imports nothing else from vidsense at run time, so the bank module
can import it; :data:`~vidsense.concepts.bank.ConceptKind` is imported for type
checking only.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from vidsense.concepts.bank import ConceptKind

# Lexicon for guessing a kind from the words of a phrase (fallback bank and untagged LLM lines).
_SCENE_WORDS = frozenset(
    "field court pool gym room kitchen bathroom stage street road beach sea ocean river lake water snow mountain "
    "forest park track arena stadium studio outdoors outdoor indoors indoor floor ground ice rink ring mat hall "
    "garden yard sky air table desk shop classroom office bedroom".split()
)
_SOUND_WORDS = frozenset(
    "sound sounds music noise cheering applause clapping crowd whistle splash splashing engine bang thud drum "
    "drums singing song beat ringing barking laughter laughing".split()
)
_SPEECH_WORDS = frozenset("speech talking talk speaking saying says words voice commentary instructions counting".split())
_STOP_WORDS = frozenset(
    "a an the and or but of to in on at by for with from into onto over under up down out off as is are was were "
    "be been being it its this that these those their his her he she they them one ones some someone somebody person "
    "people man woman who whom which while where when then than there here very also typically usually often using "
    "uses use may can could will would should each other another such both either their own".split()
)
# Verbs too vague to be a concept on their own when they appear in a label name ("ApplyEyeMakeup").
_VAGUE_VERBS = frozenset("apply do does make get take put use play have go give set".split())


def key_phrases(text: str, max_words: int = 3) -> list[str]:
    """Runs of content words between stop words and punctuation, longest runs cut to ``max_words``.

    ``"A person kicks a soccer ball on a grass field."`` -> ``["kicks", "soccer ball", "grass field"]``.
    """
    out: list[str] = []
    for chunk in re.split(r"[.,;:!?()\[\]\"/]+", text.lower()):
        run: list[str] = []
        for word in re.findall(r"[a-z][a-z'\-]*", chunk) + [""]:
            if word and word not in _STOP_WORDS:
                run.append(word)
                continue
            if run:
                phrase = " ".join(run[-max_words:])
                if phrase not in out and len(phrase) > 2:
                    out.append(phrase)
            run = []
    return out


def guess_kind(phrase: str, default: ConceptKind = "object") -> ConceptKind:
    """The kind a phrase most likely has, from a small lexicon (first matching rule wins)."""
    words = phrase.lower().split()
    rules: tuple[tuple[ConceptKind, Callable[[list[str]], bool]], ...] = (
        ("speech", lambda ws: any(w in _SPEECH_WORDS for w in ws)),
        ("sound", lambda ws: any(w in _SOUND_WORDS for w in ws)),
        ("scene", lambda ws: any(w in _SCENE_WORDS for w in ws)),
        ("sub-action", lambda ws: any(w.endswith("ing") and len(w) > 4 for w in ws) or (len(ws) == 1 and ws[0].endswith("s") and not ws[0].endswith("ss"))),
    )
    for kind, rule in rules:
        if words and rule(words):
            return kind
    return default
