"""`archspec search --report`: what a search found, read from its storage (no MXNet). A table of the trials
(the values each drew, beside the space's own; parameters, MACs, accuracy, time), the Pareto front of accuracy
against MACs, the empirical distribution function of the errors of each study (D2L's way to compare design
spaces: the curve of the better space lies higher and further left), and the best network as a spec file."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

from ..files import save_atomically, target, write_atomically
from ..spec.diagnostics import InputError, SpecError
from ..spec.tables import table


@dataclass(frozen=True)
class Trial:
    study: str
    number: int
    state: str  # complete, pruned, diverged, rejected, failed, running
    values: dict[str, Any]
    params: Optional[int]
    macs: Optional[int]
    accuracy: Optional[float]  # complete: the last epoch's; pruned: the last reported
    seconds: Optional[float]
    spec: Optional[str]
    why: str = ""  # a rejected trial's constraint or budget limit; a diverged one's loss, epoch, step and rate


def trials(storage: Any, study: str) -> list[Trial]:
    import optuna

    try:
        loaded = optuna.load_study(study_name=study, storage=storage)
    except KeyError:
        names = ", ".join(optuna.get_all_study_names(storage)) or "none"
        raise InputError(f"no study {study!r} in the storage (studies: {names})") from None
    out = []
    for t in loaded.get_trials(deepcopy=False):
        a = t.user_attrs
        state = "rejected" if "rejected" in a else "diverged" if "diverged" in a else {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed",
                                                    "RUNNING": "running", "WAITING": "waiting"}[t.state.name]
        accuracy = t.values[0] if t.values else (t.intermediate_values[max(t.intermediate_values)]
                                                 if t.intermediate_values else None)
        network = a.get("network", {})
        out.append(Trial(study, t.number, state, dict(a.get("values", {})), network.get("params"),
                         network.get("macs"), accuracy if state in ("complete", "pruned") else None,
                         a.get("seconds"), a.get("spec"), a.get("rejected", a.get("diverged", ""))))
    return out


def base_values(space_path: str) -> Optional[dict[str, Any]]:
    """The space's own values (the spec at its written values), as the table's first row; None if the space
    cannot be read here."""
    from ..spec.resolve import locate
    from ..spec.space import load_space

    try:
        space = load_space(space_path)
    except (SpecError, OSError):
        return None
    values = {}
    for v in space.variables:
        if v.parent is not None:
            continue  # inside a choice: a value of the chosen branch, which the space's own value may not be
        node, part, _ = locate(space.tree, v.key, v.mark)
        here = node.get(part) if isinstance(node, dict) else node[part]
        values[v.name] = v.shown(here)  # "-": a value that is none of a choice's
    return values


def trial_table(rows: Sequence[Trial], base: Optional[dict[str, Any]]) -> str:
    """One line per trial: the values it drew (`.` where equal to the space's own), its cost and accuracy."""
    names = list(dict.fromkeys(k for r in rows for k in r.values))
    lines = []
    if base is not None:
        lines.append(["base", "", *(str(base.get(k, "")) for k in names), "", "", "", ""])
    for r in rows:
        shown = [("." if base is not None and base.get(k) == r.values.get(k) else str(r.values.get(k, "")))
                 for k in names]
        lines.append([f"{r.study}:{r.number}" if len({x.study for x in rows}) > 1 else str(r.number),
                      r.state + (f" ({r.why})" if r.why else ""), *shown,
                      f"{r.params:,}" if r.params is not None else "",
                      f"{r.macs / 1e6:,.1f} M" if r.macs is not None else "",
                      f"{r.accuracy:.4f}" if r.accuracy is not None else "",
                      f"{r.seconds:.1f} s" if r.seconds is not None else ""])
    return table(["trial", "state", *names, "params", "MACs", "accuracy", "time"], lines,
                 "ll" + "r" * len(names) + "rrrr")


def pareto_front(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The (MACs, accuracy) points no other point beats in both: as cheap or cheaper and as accurate or more."""
    front = [p for p in points if not any(q[0] <= p[0] and q[1] >= p[1] and q != p for q in points)]
    return sorted(set(front))


def _figure() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    return plt


def plot_pareto(rows: Sequence[Trial], path: Path) -> None:
    plt = _figure()
    fig, ax = plt.subplots(figsize=(4.8, 3.4), dpi=120)
    for study in dict.fromkeys(r.study for r in rows):
        done = [(float(r.macs), float(r.accuracy)) for r in rows
                if r.study == study and r.state == "complete" and r.macs and r.accuracy is not None]
        if not done:
            continue
        dots = ax.scatter([m / 1e6 for m, _ in done], [a for _, a in done], s=14, alpha=0.6, label=study)
        front = pareto_front(done)
        ax.plot([m / 1e6 for m, _ in front], [a for _, a in front], "-o", ms=4, color=dots.get_facecolor()[0],
                label=f"{study}: Pareto front")
    ax.set_xscale("log")
    ax.set_xlabel("MACs per example (millions)")
    ax.set_ylabel("test accuracy")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_atomically(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)


def plot_ecdf(rows: Sequence[Trial], path: Path) -> None:
    """D2L's comparison of design spaces: for each, the fraction of its trained networks with an error below x."""
    plt = _figure()
    fig, ax = plt.subplots(figsize=(4.8, 3.4), dpi=120)
    for study in dict.fromkeys(r.study for r in rows):
        errors = sorted(1 - r.accuracy for r in rows if r.study == study and r.state == "complete"
                        and r.accuracy is not None)
        if errors:
            ax.step([0.0, *errors], [0.0, *((i + 1) / len(errors) for i in range(len(errors)))], where="post",
                    label=f"{study} (n={len(errors)})")
    ax.set_xlabel("test error")
    ax.set_ylabel("cumulative probability")
    ax.set_ylim(0, 1.02)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_atomically(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)


def best(rows: Sequence[Trial]) -> Optional[Trial]:
    done = [r for r in rows if r.state == "complete" and r.accuracy is not None and r.spec]
    return max(done, key=lambda r: (r.accuracy, -(r.macs or 0))) if done else None


def report(storage_url: str, studies: Sequence[str], out: Path) -> tuple[str, list[Path]]:
    """The table (returned as text) and the files written into `out`: pareto.png, ecdf.png, best.yaml (one
    best-STUDY.yaml per study when there are several)."""
    import optuna

    from .search import storage

    store = storage(storage_url, optuna_only=True)  # a report only reads: never Optuna's tables in another file
    rows = [t for study in studies for t in trials(store, study)]
    spaces = {str(optuna.load_study(study_name=s, storage=store).user_attrs.get("space")) for s in studies}
    base = base_values(spaces.pop()) if len(spaces) == 1 else None
    if out.exists() and not out.is_dir():
        raise InputError(f"--report-out {out}: not a folder")
    for path in (out / "pareto.png", out / "ecdf.png", out / "best.yaml"):
        target(path)  # a folder or a device in the way is refused before anything is written
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"--report-out {out}: cannot create it ({e.strerror or e})") from None
    written = [out / "pareto.png", out / "ecdf.png"]
    plot_pareto(rows, written[0])
    plot_ecdf(rows, written[1])
    for study in studies:
        top = best([r for r in rows if r.study == study])
        if top is not None and top.spec is not None:
            path = out / ("best.yaml" if len(studies) == 1 else f"best-{study}.yaml")
            write_atomically(path, top.spec.encode())
            written.append(path)
    counts = {state: sum(r.state == state for r in rows) for state in
              ("complete", "pruned", "diverged", "rejected", "failed", "running")}
    summary = ", ".join(f"{n} {state}" for state, n in counts.items() if n)
    return trial_table(rows, base) + f"\n{len(rows)} trials: {summary}", written
