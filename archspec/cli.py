"""The `archspec` command line. Wires the library together; prints; never shows a traceback for a
user's mistake (set ARCHSPEC_DEBUG=1 to see one for an internal error).

Streams: a command's result goes to standard output (a table, JSON, the files written, and `validate`'s
findings, which are its result); everything about the run itself goes to standard error (progress, "ok",
and the error that stopped a command). Exit codes: 0 done, 1 a spec, file or setting is unusable, 2 bad
usage or an internal error, 130 interrupted.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import warnings
from typing import Any, Iterable, Optional, Sequence, TextIO

from .spec import Spec, input_overrides, load_spec, with_overrides
from .spec.analysis import Limits, Summary, format_table, summarize
from .spec.diagnostics import InputError, Problem, SpecError
from .spec.tables import format_shape, table

Args = argparse.Namespace
MAX_SAMPLES = 100_000  # networks `sample` draws at once (a minute or so; --out writes a file for each)


def __getattr__(name: str) -> tuple[str, ...]:
    """TRAIN_OPTIONS and DATA_OPTIONS: the options train (and search) and evaluate generate from `Config`'s fields
    (`train.config.options`), made when asked for: importing `archspec.train` sets MXNet's thread count."""
    from .train.config import options

    if name in ("TRAIN_OPTIONS", "DATA_OPTIONS"):
        return options("train" if name == "TRAIN_OPTIONS" else "evaluate")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _shape(text: str) -> tuple[int, ...]:
    """`--input 3x224x224`."""
    parts = re.split(r"[x×,]", text.strip())
    if not 1 <= len(parts) <= 3 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(f"expected CxHxW such as 1x96x96, got {text!r}")
    return tuple(int(p) for p in parts)


def _spec_options(p: argparse.ArgumentParser, many: bool = False) -> None:
    """SPEC (or SPEC...) and the options of every command that reads a spec."""
    p.add_argument("specs" if many else "spec", nargs="+" if many else None, metavar="SPEC",
                   help="YAML spec file" + ("s" if many else ""))
    _set_option(p, "override a field, e.g. stages.b3.0.c1=96 or input.height=224 (repeatable)")
    p.add_argument("--input", type=_shape, metavar="CxHxW", help="input shape instead of the spec's own")
    p.add_argument("--max-params", type=int, default=Limits.max_params, metavar="N",
                   help="refuse specs with more parameters (default %(default)s)")
    p.add_argument("--max-memory", type=int, default=Limits.max_memory, metavar="BYTES",
                   help="refuse specs with more activation bytes per example (default %(default)s)")
    p.add_argument("--max-layers", type=int, default=Limits.max_layers, metavar="N",
                   help="refuse specs that expand to more layers, repeats and blocks multiplied out (default "
                        "%(default)s)")
    _base_option(p)
    _plugin_option(p)


SPACE_SET = "override a field of the space's spec (repeatable)"


def _set_option(p: argparse.ArgumentParser, help: Optional[str] = None) -> None:
    """--set PATH=VALUE (repeatable): the overrides of every command that reads a spec or a space."""
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE", help=help)


def _base_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--base-outside", action="store_true", help="follow a `base:` outside the spec's project (the "
                   "nearest folder above it with .git, pyproject.toml or .archspec, else the working directory; by "
                   "default refused: a spec names no file elsewhere)")


def _readme_option(p: argparse.ArgumentParser, section: str) -> None:
    p.add_argument("--readme", metavar="FILE", help=f"rewrite the part between the `{section}` markers of this "
                                                    "Markdown file (README.md) in place")


def _plugin_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--plugin", dest="plugins", action="append", default=[], metavar="MODULE_OR_FILE.py",
                   help="import your own layer kinds from a module or a Python file (repeatable); installed "
                        "packages' `archspec.kinds` entry points load by themselves")


def _load(path: str, args: Args) -> tuple[Spec, Summary]:
    from .spec.resolve import spec_path

    if str(spec_path(path)) != str(path):  # a name, not a file: say which spec it stands for
        print(f"{path}: the zoo's {spec_path(path)}", file=sys.stderr)
    overrides, shape = args.overrides, args.input
    if shape is not None and len(shape) == 3:  # the spec's own input, so expressions over `in` see it too
        overrides, shape = with_overrides(overrides, input_overrides(*shape)), None
    spec = load_spec(path, overrides, args.max_layers, args.base_outside)
    return spec, summarize(spec, shape, Limits(args.max_params, args.max_memory, args.max_layers))


def _inputs(args: Args) -> list[str]:
    """The files and folders a command reads (a spec with its `base:` chain, parameters, data, plugin files): what
    its outputs may not replace."""
    from .spec.resolve import spec_files

    paths: list[str] = []
    for spec in [*getattr(args, "specs", []), getattr(args, "spec", None), getattr(args, "space", None)]:
        try:
            paths += [str(p) for p in spec_files(spec, args.base_outside)] if spec else []
        except SpecError:  # loading it says what is wrong
            paths.append(spec)
    paths += [str(getattr(args, n)) for n in ("params", "data_dir", "calibration_data", "classes", "init", "recipe",
                                              "folder") if getattr(args, n, None)]
    paths += [str(args.source[1])] if getattr(args, "source", None) else []  # convert --from SOURCE FILE
    paths += [p.removeprefix("sqlite:///") for p in [getattr(args, "storage", None) or ""] if p.startswith("sqlite")]
    return paths + [p for p in getattr(args, "plugins", []) if p.endswith(".py")]


def _writes(args: Args, *outputs: tuple[str, str], folder: bool = False) -> None:
    """The output-path rule (README, "Files archspec writes"), checked before a command reads or builds anything:
    each (option, path) names a file (or with `folder`, a folder: `files.named`), and is none of the command's
    inputs (`files.target`; a folder's own rule, new or empty, is its command's)."""
    from .files import named, target

    inputs = _inputs(args)
    for option, path in outputs:
        named(path, option, folder)
        if not folder or os.path.isfile(path):  # a file where a folder should be: the folder's rule says so
            target(path, inputs)


def print_problems(problems: Iterable[Problem], stream: TextIO, github: bool = False) -> None:
    """One line per problem: `file:line:col: [warning: ]path: message`, or a GitHub Actions workflow command."""
    for p in problems:
        print(p.github() if github else p, file=stream)


def cmd_validate(args: Args) -> int:
    failed = 0
    for path in args.specs:
        try:
            _, summary = _load(path, args)
            _check_space(path, args)
        except SpecError as e:
            failed += 1
            print_problems(e.problems, sys.stdout, args.format == "github")
            continue
        print_problems(summary.warnings, sys.stdout, args.format == "github")
        try:
            _check_recipe(path, args)
        except SpecError as e:
            failed += 1
            print_problems(e.problems, sys.stdout, args.format == "github")
            continue
        if not args.quiet:
            print(f"{path}: ok ({summary.weights:,} parameters, output "
                  f"{format_shape(summary.output)})", file=sys.stderr)
    return 1 if failed else 0


def _check_recipe(path: str, args: Args) -> None:
    """A spec's `train:` section, checked as `archspec train` reads it (no MXNet)."""
    from .train.recipe import load_recipe

    load_recipe(path, args.overrides, args.base_outside)


def _check_space(path: str, args: Args) -> None:
    """A design space's `space:` section, checked as `archspec sample` reads it (a spec without one: nothing)."""
    from .spec.resolve import load_resolved
    from .spec.space import load_space

    if "space" in load_resolved(path, args.overrides, args.base_outside):
        load_space(path, args.overrides, args.max_layers, args.base_outside)


def cmd_summary(args: Args) -> int:
    spec, summary = _load(args.spec, args)
    outputs = _outputs(args.outputs, summary) if args.outputs else None
    if args.json:
        print(json.dumps({**summary.to_dict(), **({"outputs": outputs} if outputs else {})}, indent=2))
    else:
        print(format_table(summary, args.depth))
        print_problems(summary.warnings, sys.stdout)
        if outputs:
            print("outputs: " + ", ".join(f"{name} {format_shape(tuple(shape))}" for name, shape in outputs.items()))
    if args.build:
        from .gluon.check import check_with_mxnet

        report, agrees = check_with_mxnet(spec, summary)
        print(report)
        return 0 if agrees else 1
    return 0


def _outputs(text: str, summary: Summary) -> dict[str, list[int]]:
    """The shapes of the stages `--outputs` names (what `build_model(spec, outputs=...)` gives)."""
    stages = {row.path: list(row.output) for row in summary.stages}
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in stages]
    if unknown:
        raise InputError(f"--outputs: no stage {', '.join(unknown)} (stages: {', '.join(stages)})")
    return {name: stages[name] for name in names}


def cmd_compare(args: Args) -> int:
    rows, failed = [], 0
    for path in args.specs:
        try:
            _, s = _load(path, args)
        except SpecError as e:
            failed += 1
            print_problems(e.problems, sys.stderr)
            continue
        rows.append({"spec": path, "name": s.name, "input": format_shape(s.input), "params": s.weights,
                     "macs": s.macs, "memory": s.memory, "output": format_shape(s.output)})
    if args.json:
        print(json.dumps(rows, indent=2))
    elif rows:
        print(table(["name", "input", "params", "MACs", "activations", "output"],
                    [[r["name"], r["input"], f"{r['params']:,}", f"{r['macs'] / 1e6:,.1f} M",
                      f"{r['memory'] / 2**20:,.2f} MiB", r["output"]] for r in rows], "llrrrl"))
    return 1 if failed else 0


def cmd_resolve(args: Args) -> int:
    from .spec.resolve import annotated_yaml, load_resolved
    from .spec.schema import expanded

    tree = load_resolved(args.spec, args.overrides, args.base_outside)
    print(annotated_yaml(expanded(tree) if args.expand else tree), end="")
    return 0


def cmd_zoo(args: Args) -> int:
    from .spec.resolve import zoo, zoo_names

    rows = []
    for name in zoo_names():
        spec = load_spec(zoo() / f"{name}.yaml")
        s = summarize(spec)
        rows.append([name, format_shape(s.input), f"{s.weights:,}", f"{s.macs / 1e6:,.1f} M",
                     spec.description])
    print(table(["name", "input", "params", "MACs", "what it is"], rows, "llrrl"))
    return 0


def cmd_blocks(args: Args) -> int:
    from .spec.blocks import library
    from .spec.tables import block_table

    if args.readme:
        return _rewrite_section(args.readme, "blocks", block_table(library(), markdown=True))
    print(block_table(library(), markdown=args.markdown))
    return 0


def _rewrite_section(path: str, name: str, body: str) -> int:
    """Rewrite the `name` section of the Markdown file `path` (between its markers) with `body`."""
    from pathlib import Path

    from .files import write_atomically
    from .spec.tables import with_section

    try:
        text = Path(path).read_text(encoding="utf-8")
        new = with_section(text, name, body)
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise InputError(f"{path}: {e}") from None
    if new != text:
        write_atomically(Path(path), new.encode())
    print(f"{path}: the {name} section is {'rewritten' if new != text else 'current'}", file=sys.stderr)
    return 0


def cmd_schema(args: Args) -> int:
    from .files import write_atomically
    from .spec.jsonschema import field_reference, spec_schema

    if args.readme:
        return _rewrite_section(args.readme, "fields", field_reference())
    if args.output is not None:
        _writes(args, ("-o", args.output))
    text = field_reference() if args.markdown else json.dumps(spec_schema(), indent=2) + "\n"
    if args.output is not None:
        write_atomically(args.output, text.encode(), _inputs(args))
    else:
        sys.stdout.write(text)
    return 0


def cmd_export(args: Args) -> int:
    from .gluon.build import build_model, load_parameters
    from .gluon.export import check_format, destinations, export

    check_format(args.format, args.precision)  # before any data is read for calibration
    _writes(args, ("-o", args.output), *(("-o", str(p)) for p in destinations(args.output, args.format)))
    spec, _ = _load(args.spec, args)
    net = build_model(spec, outputs=[n.strip() for n in args.outputs.split(",")] if args.outputs else None,
                      rewrites=args.rewrites)
    classes = None
    if args.params:
        from pathlib import Path

        from .train.predict import run_names

        load_parameters(net, args.params)
        classes = run_names(Path(args.params))  # the run folder's class names go with the model
    for path in export(net, args.output, args.format, classes, args.precision, _calibration(args, net)):
        print(path)
    return 0


def cmd_convert(args: Args) -> int:
    from .gluon.convert import convert_file

    _writes(args, ("-o", args.output))
    spec, _ = _load(args.spec, args)
    conversion = convert_file(spec, args.source[0], args.source[1], args.output)
    print(conversion.summary(), file=sys.stderr)
    print(args.output)
    return 0


def _calibration(args: Args, net: Any) -> Any:
    """INT8's calibration images (`train.calibration`): from `--calibration-data`, by default the data evaluated,
    read with the recipe's evaluation transforms; None for another precision."""
    if args.precision != "int8":
        if args.calibration_data or args.calibration_batches is not None:
            raise InputError("--calibration-data and --calibration-batches apply to --precision int8")
        return None
    from .train.calibration import calibration_images
    from .train.config import from_options
    from .train.recipe import load_recipe

    given = {"data_dir": args.calibration_data or getattr(args, "data_dir", None),
             "test_fraction": getattr(args, "test_fraction", None)}
    config = from_options({k: v for k, v in given.items() if v is not None}, list(given),
                          load_recipe(args.spec, args.overrides, args.base_outside).values)
    option = "--calibration-data" if args.calibration_data else "--data-dir" if given["data_dir"] else "Fashion-MNIST"
    return calibration_images(net, config, args.calibration_batches or 8, f"{option} {given['data_dir'] or ''}")


def cmd_draw(args: Args) -> int:
    from .spec.draw import draw

    _writes(args, ("-o", args.output))
    spec, _ = _load(args.spec, args)
    print(draw(spec, args.output))
    return 0


def cmd_sample(args: Args) -> int:
    import time

    from .files import named, plain_name, remove_sampled, sample_folder, write_atomically
    from .spec.space import Tally, load_space, networks, spec_text

    if not 1 <= args.n <= MAX_SAMPLES:
        raise InputError(f"-n: expected a number of networks from 1 to {MAX_SAMPLES:,}, got {args.n}")
    if args.seed < 0:
        raise InputError(f"--seed: expected 0 or more, got {args.seed}")
    started = time.perf_counter()
    space = load_space(args.space, args.overrides, args.max_layers, args.base_outside)
    name = str(space.tree.get("name", "network"))
    missing = sample_folder(named(args.out, "--out", folder=True), name, args.n) if args.out is not None else []
    if args.out is not None:
        plain_name(name, "the spec's name")  # the start of each file's name
    rows: list[dict[str, Any]] = []  # what the output needs of each network: never the network itself
    tally = Tally()
    try:
        for i, network in enumerate(networks(space, args.n, args.seed, tally=tally)):
            path = os.path.join(args.out, f"{name}-{i:04d}.yaml") if args.out is not None else None
            shown = space.shown(network.values)
            if path is not None:
                if i == 0:
                    for folder in missing:
                        os.mkdir(folder)
                comment = (f"sampled from {args.space} (seed {args.seed}, network {i}): "
                           f"{space.described(network.values)}")
                write_atomically(path, spec_text(network, f"{name}-{i:04d}", comment).encode())
            rows.append({"index": i, "values": shown, "params": network.params, "macs": network.summary.macs,
                         "memory": network.summary.memory, "file": path})
    except BaseException as e:  # a space that fails part-way (or a full disk, or ^C) leaves nothing behind
        if args.out is not None:
            remove_sampled(args.out, name, len(rows), missing)
        if isinstance(e, OSError):
            raise InputError(f"--out {args.out}: cannot write there ({e.strerror or e})") from None
        raise
    seconds = time.perf_counter() - started
    if args.json:
        print(json.dumps({"space": args.space, "seed": args.seed, "attempts": tally.attempts,
                          "rejected": dict(tally.rejections.counts.most_common()), "networks": rows}, indent=1))
    else:
        names = [v.name for v in space.variables]
        lines = [[str(r["index"]), *(str(r["values"].get(n, "-")) for n in names),  # -: not drawn (another branch)
                  f"{r['params']:,}", f"{r['macs'] / 1e6:,.1f} M", f"{r['memory'] / 2**20:,.2f} MiB",
                  *([str(r["file"])] if args.out else [])] for r in rows]
        print(table(["#", *names, "params", "MACs", "memory", *(["file"] if args.out else [])], lines,
                    "r" * (len(names) + 4) + "l"))
        print(f"{len(lines):,} networks in {tally.attempts:,} attempts; rejected:"
              + (" none" if not tally.rejections.counts else "\n" + "\n".join(tally.rejections.lines())))
    print(f"sampled in {seconds:.2f} s", file=sys.stderr)
    return 0


def cmd_train(args: Args) -> int:
    from .train import TrainingInterrupted, train
    from .train.config import from_options, options
    from .train.recipe import load_recipe
    from .train.transforms import TransformError

    recipe = load_recipe(args.spec, args.overrides, args.base_outside, args.recipe)  # `train:` sections
    config = from_options(vars(args), options("train"), recipe.values)
    given = [name for name in options("train") if name in vars(args)]
    if args.out is not None:
        _writes(args, ("--out", args.out), folder=True)
    out = args.out or os.path.join("runs", os.path.splitext(os.path.basename(args.spec))[0])
    try:
        history, out = train(args.spec, out, config, args.overrides, resume=args.resume,
                             command=["archspec", *sys.argv[1:]], force=args.force, base_outside=args.base_outside,
                             recipe=recipe.describe(config, given))
    except TrainingInterrupted as e:
        print(f"archspec: {e}", file=sys.stderr)
        return 130
    except TransformError as e:  # a crop larger than the data's images: at its line in the recipe
        raise recipe.locate(e, e.field) from None
    last = history[-1] if history else {}
    print(f"trained {len(history)} epoch(s): test accuracy {last.get('test_acc', float('nan')):.4f}; run folder {out}")
    return 0


def cmd_pack(args: Args) -> int:
    from pathlib import Path

    from .train.config import from_options
    from .train.recordio import pack

    fraction = from_options(vars(args), ["test_fraction"]).test_fraction  # its bounds are the run's
    for path in pack(Path(args.folder), args.output, fraction):
        print(path)
    return 0


def cmd_search(args: Args) -> int:
    from pathlib import Path

    from .files import plain_name
    from .train.config import from_options, model_from_options, options
    from .train.search import SEARCH_OPTIONS, Search

    search = model_from_options(Search, vars(args), SEARCH_OPTIONS)
    for study in args.study or []:
        plain_name(study, "--study")  # trial folders are OUT/STUDY/, the report's best-STUDY.yaml
    _writes(args, ("--out", search.out), *([("--report-out", args.report_out)] if args.report_out is not None else []),
            folder=True)
    if args.report:
        from .train.search_report import report

        if search.url.startswith("sqlite:///") and not os.path.lexists(search.url.removeprefix("sqlite:///")):
            raise InputError(f"--report: no study database at {search.url.removeprefix('sqlite:///')} (--storage, "
                             "--out)")
        studies = list(dict.fromkeys(args.study or [])) or [_default_study(args, search.url)]
        text, written = report(search.url, studies, Path(args.report_out or search.out))
        print(text)
        for path in written:
            print(path)
        return 0
    if not args.space:
        raise InputError("search: name the SPACE to search (or pass --report)")
    if len(args.study or []) > 1:
        raise InputError("search: one --study to run (several only with --report)")
    from .train.search import Settings, open_study, run, spawn

    study = plain_name((args.study or [os.path.splitext(os.path.basename(args.space))[0]])[0], "the study's name")
    from .train.recipe import load_recipe

    recipe = load_recipe(args.space, args.overrides, args.base_outside)  # the space's `train:`, under the options
    settings = Settings(args.space, study, search, from_options(vars(args), options("search"), recipe.values),
                        args.overrides, args.base_outside)
    if search.jobs > 1:
        open_study(settings)  # created once, before the workers race to create it
        return spawn(args.argv, search.jobs)
    from .train.loop import TrainingInterrupted  # MXNet: a worker trains

    try:
        trained = run(settings, args.worker)
    except TrainingInterrupted:  # the trial stays RUNNING; the next worker finishes it from its checkpoint
        print("archspec: interrupted; run the same command again to resume the search", file=sys.stderr)
        return 130
    print(f"study {study}: this worker trained {trained} trial(s); report: archspec search --report --storage "
          f"{search.url} --study {study}")
    return 0


def _default_study(args: Args, url: str) -> str:
    """The one study in the storage, or the space's name."""
    if args.space:
        return os.path.splitext(os.path.basename(args.space))[0]
    import optuna

    from .train.search import storage

    names = optuna.get_all_study_names(storage(url, optuna_only=True))
    if len(names) != 1:
        raise InputError(f"--report: name the --study (studies in {url}: {', '.join(names) or 'none'})")
    return str(names[0])


def cmd_evaluate(args: Args) -> int:
    import math
    from pathlib import Path

    from .gluon.build import build_model, load_parameters
    from .gluon.precision import for_inference
    from .train import data, evaluate, parse_contexts
    from .train.config import from_options, options
    from .train.predict import run_names, write_predictions
    from .train.recipe import load_recipe
    from .train.stream import evaluation_data

    if args.engine == "onnxruntime" and args.precision != "fp32":
        raise InputError(f"--engine onnxruntime runs fp32; --precision {args.precision} runs on MXNet")

    recipe = load_recipe(args.spec, args.overrides, args.base_outside)  # its `evaluate:` transforms
    config = from_options(vars(args), options("evaluate"), recipe.values)
    if args.predictions is not None:
        _writes(args, ("--predictions", args.predictions))
    contexts = parse_contexts(config.ctx)
    spec, _ = _load(args.spec, args)
    split, pipeline = evaluation_data(config, args.split, spec.input.shape)
    kept = run_names(Path(args.params))
    if isinstance(split, data.Split) and split.classes and kept:  # score with the model's own class numbers
        split = split.relabel(kept, f"{args.params}'s run folder")
    net = build_model(spec, ctx=contexts, rewrites=args.rewrites)
    load_parameters(net, args.params, ctx=contexts)
    predicted: Optional[list[int]] = [] if args.predictions is not None else None
    model = for_inference(net, args.precision, _calibration(args, net))
    if args.engine == "onnxruntime":
        model = _on_onnxruntime(net)
    try:
        loss, accuracy = evaluate(net, split, config.batch_size, contexts, predicted, model, pipeline)
    finally:
        if pipeline is not None:
            pipeline.close()
    if not math.isfinite(loss):
        raise InputError(f"{args.params}: the network with these parameters gives a loss of {loss} on "
                         f"{len(split)} examples "
                         "(corrupt, or a run that diverged)")
    if predicted is not None:
        write_predictions(args.predictions, split, predicted, _inputs(args))
    print(json.dumps({"spec": spec.name, "split": args.split, "precision": args.precision,
                      "engine": args.engine or "mxnet", "examples": len(split), "loss": round(loss, 6),
                      "accuracy": round(accuracy, 6)}))
    return 0


def _on_onnxruntime(net: Any) -> Any:
    """`net` run by ONNX Runtime, taking and giving MXNet arrays as the network does (`evaluate --engine`)."""
    from mxnet import np

    from .train.predict import on_onnxruntime

    scores = on_onnxruntime(net)
    return lambda x: np.array(scores(x.asnumpy()), ctx=x.ctx)


def cmd_predict(args: Args) -> int:
    from pathlib import Path

    from .train.predict import predict

    if args.top < 1:
        raise InputError(f"--top: expected a positive number of classes, got {args.top}")
    from .train.config import from_options
    from .train.recipe import load_recipe

    spec, _ = _load(args.spec, args)
    steps = from_options({}, [], load_recipe(args.spec, args.overrides, args.base_outside).values).evaluate
    results = predict(spec, Path(args.params), [Path(p) for p in args.images], args.top,
                      Path(args.classes) if args.classes else None, steps, args.engine, args.rewrites)
    if args.json:
        print(json.dumps(results, indent=1))
    for r in [] if args.json else results:
        line = f"{r['image']}: " + ", ".join(f"{t['name']} {t['probability']:.3f}" for t in r["top"])
        print(os.fsencode(line).decode(errors="backslashreplace"))  # a name that is not UTF-8: its bytes escaped
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="archspec", description="YAML specs for MXNet Gluon networks.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _spec_commands(sub)
    _backend_commands(sub)
    return p


def _spec_commands(sub: Any) -> None:
    """The commands that read specs without MXNet."""
    v = sub.add_parser("validate", help="check specs (schema, shapes, budget); exit 1 if any is invalid")
    _spec_options(v, many=True)
    v.add_argument("--format", choices=["text", "github"], default="text",
                   help="github: workflow commands that annotate the YAML line in a GitHub Actions log")
    v.add_argument("-q", "--quiet", action="store_true", help="print problems only")
    v.set_defaults(func=cmd_validate)

    s = sub.add_parser("summary", help="layer table: shapes, parameters, MACs, memory (no MXNet needed)")
    _spec_options(s)
    s.add_argument("--depth", type=_depth, default=0, help="0: stages (default), 1: their layers, 2+: branches")
    s.add_argument("--json", action="store_true", help="machine-readable output with every layer")
    s.add_argument("--build", action="store_true", help="also build the network with MXNet and check the "
                                                        "analysis against it")
    s.add_argument("--outputs", metavar="STAGE,...", help="say what a network built with these stages' outputs "
                                                          "gives (build_model(spec, outputs=...), export --outputs)")
    s.set_defaults(func=cmd_summary)

    c = sub.add_parser("compare", help="one row per spec: parameters, MACs, activation memory, output")
    _spec_options(c, many=True)
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_compare)

    r = sub.add_parser("resolve", help="print the spec with its base and overrides applied, each value "
                                       "annotated with the file and line it came from")
    r.add_argument("spec", metavar="SPEC")
    _set_option(r)
    r.add_argument("--expand", action="store_true", help="print the spec expanded: every block, argument, "
                                                         "expression, default, `when` and `repeat` worked out")
    _base_option(r)
    _plugin_option(r)
    r.set_defaults(func=cmd_resolve)

    z = sub.add_parser("zoo", help="the specs that ship with archspec, usable by name (archspec summary googlenet)")
    z.set_defaults(func=cmd_zoo, plugins=[])

    b = sub.add_parser("blocks", help="the block library: every block a spec can use by name, and its arguments")
    b.add_argument("--markdown", action="store_true", help="as a Markdown table (the README's)")
    _readme_option(b, "blocks")
    _plugin_option(b)
    b.set_defaults(func=cmd_blocks)

    d = sub.add_parser("draw", help="an architecture diagram (Graphviz): svg, png, pdf or dot")
    _spec_options(d)
    d.add_argument("-o", "--output", required=True, metavar="FILE", help="FILE.svg, .png, .pdf or .dot")
    d.set_defaults(func=cmd_draw)

    sa = sub.add_parser("sample", help="networks of a design space (a spec with `space:`), inside its constraints "
                                       "and budget, counted statically")
    sa.add_argument("space", metavar="SPACE", help="a spec with a `space:` section (or a file with `base:` and one)")
    sa.add_argument("-n", type=int, default=10, metavar="N", help="networks to sample (default %(default)s)")
    sa.add_argument("--seed", type=int, default=0, help="random seed, 0 or more (default %(default)s)")
    sa.add_argument("--out", metavar="DIR", help="write each network as a spec file (NAME-0000.yaml, ...) that "
                                                 "archspec train takes, into this new (or empty) folder")
    sa.add_argument("--json", action="store_true", help="machine-readable output")
    _set_option(sa, SPACE_SET)
    sa.add_argument("--max-layers", type=int, default=Limits.max_layers, metavar="N",
                    help="refuse networks that expand to more layers (default %(default)s)")
    _base_option(sa)
    _plugin_option(sa)
    sa.set_defaults(func=cmd_sample)

    j = sub.add_parser("schema", help="print the JSON Schema of a spec file (for editors)")
    j.add_argument("-o", "--output", help="write to this file instead of standard output")
    j.add_argument("--markdown", action="store_true", help="the field reference of every layer kind, in Markdown")
    _readme_option(j, "fields")
    _plugin_option(j)
    j.set_defaults(func=cmd_schema)


def _precision_options(p: argparse.ArgumentParser) -> None:
    """--precision and INT8's calibration, for the commands that run or write an inference graph, and
    --rewrites."""
    _rewrites_option(p)
    p.add_argument("--precision", choices=["fp32", "bf16", "int8"], default="fp32",
                   help="bf16: convolutions and dense layers in bfloat16 (AMP; CPUs with AVX-512 BF16); int8: "
                        "oneDNN INT8, calibrated on training images (default fp32)")
    p.add_argument("--calibration-data", metavar="DIR", help="int8: IDX files or class folders of images whose "
                                                             "training images calibrate (default: the data "
                                                             "evaluated, or Fashion-MNIST)")
    p.add_argument("--calibration-batches", type=_positive, metavar="N",
                   help="int8: batches of 32 images to calibrate on (default 8)")


def _engine_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--engine", choices=["mxnet", "onnxruntime"], help="what runs trained parameters: MXNet (the "
                   "default), or ONNX Runtime on the network's ONNX export (fp32; needs the export extra). An "
                   "export runs on its own engine")


def _rewrites_option(p: argparse.ArgumentParser) -> None:
    """--rewrites, parsed by `gluon.rewrites.Rewrites.parse` when the network is built (the parser imports no MXNet)."""
    p.add_argument("--rewrites", metavar="LIST", help="graph rewrites, which keep the weights as they are: default, "
                                                      "none, all, or names among fuse-siblings, fold-batchnorm, onednn "
                                                      "(README: Graph rewrites)")


def _depth(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected 0 (stages), 1 (their layers) or more, got {text!r}")
    return int(text)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def _backend_commands(sub: Any) -> None:
    """The commands that build networks with MXNet: export, train, evaluate, predict, launch."""
    from .train.config import add_options, options  # pydantic only: no MXNet
    from .train.search import SEARCH_OPTIONS, Search  # Optuna and MXNet only when a search runs

    e = sub.add_parser("export", help="write the network as MXNet symbol files or ONNX, with its weights")
    _spec_options(e)
    e.add_argument("--params", metavar="FILE", help="weights to export (from training or save_parameters); "
                                                   "default: the initial weights")
    e.add_argument("--format", choices=["mxnet", "onnx"], default="mxnet",
                   help="mxnet: OUTPUT-symbol.json + OUTPUT-0000.params; onnx: the file OUTPUT")
    e.add_argument("-o", "--output", required=True, metavar="PATH")
    e.add_argument("--outputs", metavar="STAGE,...", help="export a backbone giving these stages' outputs (in this "
                                                          "order) instead of the last stage's")
    _precision_options(e)
    add_options(e, ["test_fraction"])  # for --calibration-data that is a folder of class folders
    e.set_defaults(func=cmd_export)

    pa = sub.add_parser("pack", help="class folders of images as RecordIO (.rec + .idx, and .json with the class "
                                     "names) for streamed training: -o DATA.rec packs DIR/CLASS/*; -o FOLDER writes "
                                     "FOLDER/train.rec and FOLDER/test.rec, which --data-dir FOLDER reads")
    pa.add_argument("folder", metavar="DIR", help="class folders of images (or train/ and test/ of them)")
    pa.add_argument("-o", "--output", required=True, metavar="OUT", help="a .rec file, or a folder")
    add_options(pa, ["test_fraction"])
    pa.set_defaults(func=cmd_pack)

    cv = sub.add_parser("convert", help="another library's weights (MXNet model zoo, GluonCV, a PyTorch state dict, "
                                        "safetensors) as the parameters of a spec")
    _spec_options(cv)
    cv.add_argument("--from", dest="source", nargs=2, required=True, metavar=("SOURCE", "FILE"),
                    help="SOURCE is mxnet, gluoncv, torch (.pth; needs torch) or safetensors; FILE its weights")
    cv.add_argument("-o", "--output", required=True, metavar="OUT.params")
    cv.set_defaults(func=cmd_convert)

    t = sub.add_parser("train", help="train a spec (Fashion-MNIST, or IDX files or class folders of images with "
                                     "--data-dir); resumable")
    _spec_options(t)
    add_options(t, options("train"))
    t.add_argument("--recipe", metavar="FILE.yaml", help="a training recipe: a file of a `train:` section, merged "
                                                         "over the spec's own (options given here win over both)")
    t.add_argument("--out", metavar="DIR", help="run folder (default runs/SPEC_NAME)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    t.add_argument("--force", action="store_true", help="with --resume: train a finished run again over its results")
    t.set_defaults(func=cmd_train)

    se = sub.add_parser("search", help="explore a design space with Optuna: each trial trained as `train` does, "
                                       "pruned per epoch; resumable, shareable across workers and machines")
    se.add_argument("space", nargs="?", metavar="SPACE", help="a spec with a `space:` section")
    se.add_argument("--study", action="append", metavar="NAME", help="study name (default: the space's file name); "
                                                                     "with --report, repeatable: one ECDF per study")
    add_options(se, SEARCH_OPTIONS, Search)
    se.add_argument("--report", action="store_true", help="do not search: print the trials, write pareto.png, "
                                                         "ecdf.png and best.yaml")
    se.add_argument("--report-out", metavar="DIR", help="where --report writes its files (default: --out)")
    _set_option(se, SPACE_SET)
    se.add_argument("--worker", type=int, default=0, help=argparse.SUPPRESS)
    add_options(se, options("search"))
    _base_option(se)
    _plugin_option(se)
    se.set_defaults(func=cmd_search)

    ev = sub.add_parser("evaluate", help="loss and accuracy of trained parameters on a dataset split")
    _spec_options(ev)
    add_options(ev, options("evaluate"))
    ev.add_argument("--params", required=True, metavar="FILE", help="parameters (final.params, a checkpoint's "
                                                                    ".params, or save_parameters output)")
    ev.add_argument("--split", choices=["train", "test"], default="test")
    ev.add_argument("--predictions", metavar="FILE.csv", help="also write each example's predicted class (and "
                                                                "its file, for image folders)")
    _precision_options(ev)
    _engine_option(ev)
    ev.set_defaults(func=cmd_evaluate)

    pr = sub.add_parser("predict", help="the most probable classes of image files (PNG, JPEG), from trained "
                                        "parameters or an exported model")
    _spec_options(pr)
    pr.add_argument("--params", required=True, metavar="FILE",
                    help="final.params (or a checkpoint's .params), an MXNet export NAME-symbol.json (beside "
                         "NAME-0000.params), or an ONNX file")
    pr.add_argument("images", nargs="+", metavar="IMAGE")
    pr.add_argument("--top", type=int, default=3, metavar="K", help="classes shown per image (default 3)")
    pr.add_argument("--classes", metavar="FILE.json", help="the class names, a JSON list (default: the run "
                                                           "folder's classes.json, else Fashion-MNIST's names for "
                                                           "ten classes, else class numbers)")
    pr.add_argument("--json", action="store_true")
    _engine_option(pr)
    _rewrites_option(pr)
    pr.set_defaults(func=cmd_predict)

    la = sub.add_parser("launch", help="MXNet's distributed launcher (tools/launch.py), fixed for Python 3.9+: "
                                       "archspec launch -n 2 -s 1 --launcher local -- archspec train ... "
                                       "--kvstore dist_sync", add_help=False)
    la.add_argument("launch_args", nargs=argparse.REMAINDER, help="-n WORKERS -s SERVERS --launcher local|ssh "
                    "[-H HOSTFILE] -- COMMAND (see mxnet/tools/launch.py)")


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["launch"]:  # every option, --help included, is MXNet launch.py's
        from .train.launch import main as launch

        return launch(argv[1:])
    args = parser().parse_args(argv)
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        return _run(args, argv)


def _show_warning(message: Any, category: Any, filename: str, lineno: int, file: Any = None,
                  line: Optional[str] = None) -> None:
    """archspec's own warnings (a slower precision) as one line on standard error; others as Python shows them."""
    if getattr(category, "__module__", "").startswith("archspec."):
        print(f"archspec: warning: {message}", file=sys.stderr)
    else:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def _run(args: Args, argv: list[str]) -> int:
    try:
        from .spec.plugins import load_entry_points, load_plugin

        load_entry_points()
        for name in getattr(args, "plugins", []):
            load_plugin(name)
        args.argv = argv
        return args.func(args)
    except SpecError as e:
        print_problems(e.problems, sys.stderr)
        return 1
    except InputError as e:
        print(f"archspec: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("archspec: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a bug in archspec, not the user's mistake
        if os.environ.get("ARCHSPEC_DEBUG"):
            raise
        print(f"archspec: internal error: {type(e).__name__}: {e} (set ARCHSPEC_DEBUG=1 for a traceback, "
              "and please report it)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
