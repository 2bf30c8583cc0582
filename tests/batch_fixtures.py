"""Batch inputs for the CLI and SDK tests: real clips plus files that must fail."""

from __future__ import annotations

import shutil
from pathlib import Path

from media_fixtures import write_video

from vidsense.app import cli

# A cheap configuration: one visual model and short custom labels (the embedding reasoner reads them).
CHEAP_ENV = {"VIDSENSE_PERCEPTION": '["visual-tags"]'}
LABELS = "biking,cooking,swimming"


def batch_folder(root: Path, example: Path) -> dict[str, Path]:
    """A folder with two real videos (one in a sub-folder), a truncated mp4, a
    text file renamed .mp4 and a text file that a folder scan must ignore.

    Returns:
        name -> path of each file.
    """
    root.mkdir(parents=True, exist_ok=True)
    (root / "sub").mkdir(exist_ok=True)
    files = {
        "bikes": root / "bikes.mp4",
        "square": write_video(root / "sub" / "square.mp4", seconds=2.0),
        "corrupt": root / "corrupt.mp4",
        "text": root / "notes.mp4",
    }
    shutil.copyfile(example, files["bikes"])
    files["corrupt"].write_bytes(example.read_bytes()[:20000])
    files["text"].write_text("this is a text file, not a video\n")
    (root / "readme.txt").write_text("not picked up by a folder scan\n")
    return files


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    """Run ``vidsense ARGS`` in this process (models stay loaded between calls)."""
    try:
        cli.main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    captured = capsys.readouterr()
    return code, captured.out, captured.err
