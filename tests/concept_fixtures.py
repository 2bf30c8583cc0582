"""Shared fixtures for the concept tests: a small label set, its bank, and a timeline built from real observations."""

from __future__ import annotations

from vidsense.concepts.bank import ConceptBank, make_concept
from vidsense.services.timeline import Observation, Timeline, VideoInfo, make_windows

LABELS = ("SoccerJuggling", "PlayingGuitar", "CuttingInKitchen")

DESCRIPTIONS = {
    "SoccerJuggling": "A person keeps a soccer ball in the air with the feet on a grass field.",
    "PlayingGuitar": "A person strums an acoustic guitar while music is playing.",
    "CuttingInKitchen": "A person chops vegetables with a knife on a cutting board in a kitchen.",
}


def toy_bank() -> ConceptBank:
    """Nine concepts, three per label, of three kinds."""
    spec = [
        ("soccer ball", "object", "SoccerJuggling"),
        ("grass field", "scene", "SoccerJuggling"),
        ("repeated kicking", "sub-action", "SoccerJuggling"),
        ("guitar", "object", "PlayingGuitar"),
        ("strumming strings", "sub-action", "PlayingGuitar"),
        ("guitar music", "sound", "PlayingGuitar"),
        ("kitchen knife", "object", "CuttingInKitchen"),
        ("kitchen counter", "scene", "CuttingInKitchen"),
        ("chopping vegetables", "sub-action", "CuttingInKitchen"),
    ]
    return ConceptBank("toy", LABELS, tuple(make_concept(t, k, {lab: 1.0}) for t, k, lab in spec))


def soccer_timeline() -> Timeline:
    """Four 2-s windows of a soccer clip; window 1 is silent, window 3 holds speech and sound only."""
    info = VideoInfo(path="soccer.mp4", sha256="0" * 64, duration_s=8.0, fps=25.0, width=320, height=240, has_video=True, has_audio=True)
    windows = make_windows(8.0, 2.0)
    obs = [
        Observation(0, 0.0, 2.0, "sight", "visual-tags", "soccer ball", 0.9, "objects"),
        Observation(0, 0.0, 2.0, "sight", "visual-tags", "grass field", 0.8, "scene"),
        Observation(2, 4.0, 6.0, "sight", "action", "kicking a soccer ball repeatedly", 1.0, "action"),
        Observation(2, 4.0, 6.0, "sound", "audio-tags", "crowd cheering", 0.7, "tags"),
        Observation(3, 6.0, 8.0, "speech", "speech", "nice juggling, keep the ball up", 1.0, ""),
        Observation(3, 6.0, 8.0, "sound", "audio-tags", "music", 0.4, "tags"),
    ]
    return Timeline(video=info, windows=windows, observations=tuple(obs), models=("visual-tags", "action", "audio-tags", "speech"))
