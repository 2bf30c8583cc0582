"""Justification: one or two sentences on why the video is the chosen label.

Optional (``--explain-text``) because it costs a generation of ~60 tokens.
The LLM sees the same prompt it classified from, its own answer, and a
request to cite what was seen or heard, so the reason refers to the timeline.
"""

from __future__ import annotations

import re
from typing import Iterable

from vidsense.agents import prompts
from vidsense.agents.llm import LanguageModel
from vidsense.services.timeline import Timeline

MAX_TOKENS = 80


def explain_text(llm: LanguageModel, timeline: Timeline, label: str, *, modalities: Iterable[str] | None = None, max_tokens: int = MAX_TOKENS) -> str:
    """One or two sentences saying why ``timeline`` shows ``label``.

    Args:
        llm: the reasoning model.
        timeline: the video's timeline (untrusted text, delimited in the prompt).
        label: the chosen label in readable form.
        modalities: restrict what the model reads, as for classification.
        max_tokens: generation budget.

    Returns:
        The justification, cut to at most two sentences ('' if the model wrote nothing).
    """
    # Speech and on-screen text are quoted, as when classifying: the reason may cite them, not obey them.
    chat = prompts.timeline_prompt([label], timeline, modalities)
    text = llm.generate(prompts.justification_messages(chat, label), max_tokens=max_tokens)
    sentences = re.findall(r"[^.!?]+[.!?]?", " ".join(text.split()))
    return "".join(sentences[:2]).strip()
