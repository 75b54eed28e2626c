"""The `archspec` command line. Wires the library together; prints; never shows a traceback for a
user's mistake (set ARCHSPEC_DEBUG=1 to see one for an internal error)."""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from typing import Sequence

from .analysis import Limits, Summary, format_table, summarize
from .errors import InputError, Problem, SpecError
from .schema import Spec


def _shape(text: str) -> tuple[int, ...]:
    parts = re.split(r"[x×,]", text.strip())
    if not 1 <= len(parts) <= 3 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(f"expected CxHxW such as 1x96x96, got {text!r}")
    return tuple(int(p) for p in parts)


def _spec_options(p: argparse.ArgumentParser, many: bool = False) -> None:
    p.add_argument("specs" if many else "spec", nargs="+" if many else None, metavar="SPEC",
                   help="YAML spec file" + ("s" if many else ""))
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE",
                   help="override a field, e.g. stages.b3.0.c1=96 or input.height=224 (repeatable)")
    p.add_argument("--input", type=_shape, metavar="CxHxW", help="input shape instead of the spec's own")
    p.add_argument("--max-params", type=int, default=Limits.max_params, metavar="N",
                   help="refuse specs with more parameters (default %(default)s)")
    p.add_argument("--max-memory", type=int, default=Limits.max_memory, metavar="BYTES",
                   help="refuse specs with more activation bytes per example (default %(default)s)")


def _load(path: str, args) -> tuple[Spec, Summary]:
    from . import load_spec

    spec = load_spec(path, args.overrides)
    return spec, summarize(spec, args.input, Limits(args.max_params, args.max_memory))


def cmd_validate(args) -> int:
    show = Problem.github if args.format == "github" else Problem.__str__
    failed = 0
    for path in args.specs:
        try:
            _, summary = _load(path, args)
        except SpecError as e:
            failed += 1
            for p in e.problems:
                print(show(p))
            continue
        for w in summary.warnings:
            print(show(w).replace(": ", ": warning: ", 1) if args.format != "github" else show(w))
        if not args.quiet:
            print(f"{path}: ok ({summary.params + summary.state:,} parameters, output {_fmt(summary.output)})",
                  file=sys.stderr)
    return 1 if failed else 0


def cmd_summary(args) -> int:
    spec, summary = _load(args.spec, args)
    if args.json:
        print(json.dumps(summary.to_dict(), indent=2))
    else:
        print(format_table(summary, args.depth))
        for w in summary.warnings:
            print(f"warning: {w}")
    if args.build:
        print(_check_with_mxnet(spec, summary))
    return 0


def _check_with_mxnet(spec: Spec, summary) -> str:
    """Build the network, run one example through it stage by stage, and compare with the analysis."""
    from mxnet import np

    from .builder import build_model

    net = build_model(spec, hybridize=False)
    x = np.zeros((1,) + summary.input)
    lines = ["built with MXNet:"]
    for stage, row in zip(net, summary.stages):
        x = stage(x)
        agree = "ok" if tuple(x.shape[1:]) == row.output else f"MISMATCH (analysis says {_fmt(row.output)})"
        lines.append(f"  {row.path:<8} output {tuple(x.shape)}  {agree}")
    count = sum(p.data().size for p in net.collect_params().values())
    lines.append(f"  {count:,} parameters in collect_params() "
                 + ("ok" if count == summary.params + summary.state else "MISMATCH"))
    return "\n".join(lines)


def cmd_compare(args) -> int:
    rows, failed = [], 0
    for path in args.specs:
        try:
            _, s = _load(path, args)
        except SpecError as e:
            failed += 1
            print("\n".join(map(str, e.problems)), file=sys.stderr)
            continue
        rows.append({"spec": path, "name": s.name, "input": _fmt(s.input), "params": s.params + s.state,
                     "macs": s.macs, "memory": s.memory, "output": _fmt(s.output)})
    if args.json:
        print(json.dumps(rows, indent=2))
    elif rows:
        header = ["name", "input", "params", "MACs", "activations", "output"]
        table = [[r["name"], r["input"], f"{r['params']:,}", f"{r['macs'] / 1e6:,.1f} M",
                  f"{r['memory'] / 2**20:,.2f} MiB", r["output"]] for r in rows]
        widths = [max(len(x[i]) for x in [header, *table]) for i in range(len(header))]
        for line in [header, *table]:
            print("  ".join(c.ljust(w) if i in (0, 1, 5) else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths))))
    return 1 if failed else 0


def cmd_resolve(args) -> int:
    from .resolve import annotated_yaml, load_resolved

    print(annotated_yaml(load_resolved(args.spec, args.overrides)), end="")
    return 0


def cmd_schema(args) -> int:
    from .jsonschema import field_reference, spec_schema

    text = field_reference() if args.markdown else json.dumps(spec_schema(), indent=2) + "\n"
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


def cmd_export(args) -> int:
    from .builder import build_model, load_parameters
    from .export import export

    spec, _ = _load(args.spec, args)
    net = build_model(spec)
    if args.params:
        load_parameters(net, args.params)
    for path in export(net, args.output, args.format):
        print(path)
    return 0


def cmd_draw(args) -> int:
    from .draw import draw

    spec, _ = _load(args.spec, args)
    print(draw(spec, args.output))
    return 0


def _config(args):
    from .train import Config

    return Config(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, optimizer=args.optimizer,
                  momentum=args.momentum, weight_decay=args.wd, resize=args.resize, seed=args.seed, data=args.data,
                  data_dir=args.data_dir, checkpoint_every=args.checkpoint_every, keep=args.keep)


def cmd_train(args) -> int:
    from .train import TrainingInterrupted, train

    out = args.out or os.path.join("runs", os.path.splitext(os.path.basename(args.spec))[0])
    try:
        history, out = train(args.spec, out, _config(args), args.overrides, ctx=args.ctx, kvstore=args.kvstore,
                             resume=args.resume, command=["archspec", *sys.argv[1:]])
    except TrainingInterrupted as e:
        print(f"archspec: {e}", file=sys.stderr)
        return 130
    last = history[-1] if history else {}
    print(f"trained {len(history)} epoch(s): test accuracy {last.get('test_acc', float('nan')):.4f}; run folder {out}")
    return 0


def cmd_evaluate(args) -> int:
    from . import data
    from .builder import build_model, load_parameters
    from .train import evaluate, parse_contexts

    contexts = parse_contexts(args.ctx)
    spec, _ = _load(args.spec, args)
    net = build_model(spec, ctx=contexts)
    load_parameters(net, args.params, ctx=contexts)
    split = data.load(args.data, args.split, args.data_dir)
    loss, accuracy = evaluate(net, split, args.batch_size, contexts)
    print(json.dumps({"spec": spec.name, "split": args.split, "examples": len(split), "loss": round(loss, 6),
                      "accuracy": round(accuracy, 6)}))
    return 0


def _fmt(shape) -> str:
    return "x".join(map(str, shape))


def _data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default="fashion-mnist", help="dataset (default %(default)s, loaded as D2L does)")
    p.add_argument("--data-dir", metavar="DIR", help="read the dataset's IDX files (train-images-idx3-ubyte[.gz], "
                                                    "...) from DIR instead of downloading")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--ctx", default="cpu", help="cpu (default), gpu:0 or gpu:0,1 (batches split across them)")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="archspec", description="YAML specs for MXNet Gluon networks.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    v = sub.add_parser("validate", help="check specs (schema, shapes, budget); exit 1 if any is invalid")
    _spec_options(v, many=True)
    v.add_argument("--format", choices=["text", "github"], default="text",
                   help="github: workflow commands that annotate the YAML line in a GitHub Actions log")
    v.add_argument("-q", "--quiet", action="store_true", help="print problems only")
    v.set_defaults(func=cmd_validate)

    s = sub.add_parser("summary", help="layer table: shapes, parameters, MACs, memory (no MXNet needed)")
    _spec_options(s)
    s.add_argument("--depth", type=int, default=0, help="0: stages (default), 1: their layers, 2+: branches")
    s.add_argument("--json", action="store_true", help="machine-readable output with every layer")
    s.add_argument("--build", action="store_true", help="also build the network with MXNet and check the "
                                                        "analysis against it")
    s.set_defaults(func=cmd_summary)

    c = sub.add_parser("compare", help="one row per spec: parameters, MACs, activation memory, output")
    _spec_options(c, many=True)
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_compare)

    r = sub.add_parser("resolve", help="print the spec with its base and overrides applied, each value "
                                       "annotated with the file and line it came from")
    r.add_argument("spec", metavar="SPEC")
    r.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE")
    r.set_defaults(func=cmd_resolve)

    e = sub.add_parser("export", help="write the network as MXNet symbol files or ONNX, with its weights")
    _spec_options(e)
    e.add_argument("--params", metavar="FILE", help="weights to export (from training or save_parameters); "
                                                   "default: the initial weights")
    e.add_argument("--format", choices=["mxnet", "onnx"], default="mxnet",
                   help="mxnet: OUTPUT-symbol.json + OUTPUT-0000.params; onnx: the file OUTPUT")
    e.add_argument("-o", "--output", required=True, metavar="PATH")
    e.set_defaults(func=cmd_export)

    d = sub.add_parser("draw", help="an architecture diagram (Graphviz): svg, png, pdf or dot")
    _spec_options(d)
    d.add_argument("-o", "--output", required=True, metavar="FILE", help="FILE.svg, .png, .pdf or .dot")
    d.set_defaults(func=cmd_draw)

    t = sub.add_parser("train", help="train a spec (Fashion-MNIST, or IDX files with --data-dir); resumable")
    _spec_options(t)
    _data_options(t)
    t.add_argument("--resize", type=int, metavar="N", help="set the spec's input to NxN (images are always "
                                                           "resized to the spec's input, as D2L's resize=96)")
    t.add_argument("--epochs", type=int, default=10)
    t.add_argument("--lr", type=float, default=0.1, help="learning rate (default %(default)s, D2L's for GoogLeNet)")
    t.add_argument("--optimizer", choices=["sgd", "nag", "adam"], default="sgd")
    t.add_argument("--momentum", type=float, default=0.0, help="for sgd and nag (nag defaults to 0.9)")
    t.add_argument("--wd", type=float, default=0.0, help="weight decay")
    t.add_argument("--seed", type=int, default=0, help="data order, initial weights and dropout masks")
    t.add_argument("--kvstore", default="device", help="device (default), local, dist_sync or dist_async "
                                                       "(run under `archspec launch`)")
    t.add_argument("--out", metavar="DIR", help="run folder (default runs/SPEC_NAME)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    t.add_argument("--checkpoint-every", type=int, default=0, metavar="STEPS",
                   help="also checkpoint every STEPS steps (default: at the end of each epoch only)")
    t.add_argument("--keep", type=int, default=3, metavar="K", help="checkpoints kept (default %(default)s)")
    t.set_defaults(func=cmd_train)

    ev = sub.add_parser("evaluate", help="loss and accuracy of trained parameters on a dataset split")
    _spec_options(ev)
    _data_options(ev)
    ev.add_argument("--params", required=True, metavar="FILE", help="parameters (final.params, a checkpoint's "
                                                                    ".params, or save_parameters output)")
    ev.add_argument("--split", choices=["train", "test"], default="test")
    ev.set_defaults(func=cmd_evaluate)

    la = sub.add_parser("launch", help="MXNet's distributed launcher (tools/launch.py), fixed for Python 3.9+: "
                                       "archspec launch -n 2 -s 1 --launcher local -- archspec train ... "
                                       "--kvstore dist_sync", add_help=False)
    la.add_argument("launch_args", nargs=argparse.REMAINDER, help="-n WORKERS -s SERVERS --launcher local|ssh "
                    "[-H HOSTFILE] -- COMMAND (see mxnet/tools/launch.py)")

    j = sub.add_parser("schema", help="print the JSON Schema of a spec file (for editors)")
    j.add_argument("-o", "--output", help="write to this file instead of standard output")
    j.add_argument("--markdown", action="store_true", help="the field reference of every layer kind, in Markdown")
    j.set_defaults(func=cmd_schema)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["launch"]:  # every option, --help included, is MXNet launch.py's
        from .launch import main as launch

        return launch(argv[1:])
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except SpecError as e:
        for problem in e.problems:
            print(problem, file=sys.stderr)
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
