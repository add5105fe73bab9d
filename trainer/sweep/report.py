"""The sweep report: the study's tables and figures from a sweep's run folders, as one
self-contained HTML file (plots embedded as base64 PNG) with the PNG and CSV files beside it.

Sections: a summary written from the numbers (which model wins at which FlagLimit, where blur
starts to hurt), Table 3 (macro precision/recall/F1 per model and FlagLimit, validation and
test, mean ± sd over seeds), Figure 2 (macro-F1 against FlagLimit per model, the band is the
spread over seeds: min to max), Table 4 (parameters, MB, batch-1 latency, GFLOPs on the
device the runs were measured on), Table 5 and Figures 4/5 (the change of macro-F1 under blur
per sigma, post- and pre-resize, and the drop slopes, at each model's largest FlagLimit), and
the normalised confusion matrix of the best model (highest mean validation macro-F1; its best
seed).

Plots with matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import os
from pathlib import Path
from typing import Any

from trainer.formats.sweep_results import (
    FIELD_NAMES,
    Summary,
    collect,
    common_classes,
    group,
    limits_of,
    summarize,
)

#: a fall of macro-F1 larger than this under blur is where blur "starts to hurt"
HURT_DELTA = 0.02


def _mpl():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _png(fig, path: Path) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    data = buf.getvalue()
    path.write_bytes(data)
    _mpl().close(fig)
    return base64.b64encode(data).decode("ascii")


def _table_html(head: list[str], rows: list[list[Any]], caption: str) -> str:
    out = [f"<table><caption>{html.escape(caption)}</caption><tr>"]
    out += [f"<th>{html.escape(str(h))}</th>" for h in head]
    out.append("</tr>")
    for r in rows:
        out.append("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in r) + "</tr>")
    out.append("</table>")
    return "".join(out)


def _write_csv(path: Path, head: list[str], rows: list[list[Any]]) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(head)
        w.writerows(rows)


def _cell(s: Summary | None, digits: int = 3) -> str:
    return "" if s is None else s.text(digits)


# ---- the sections -----------------------------------------------------------------------------
def table3(rows: list[dict]) -> tuple[list[str], list[list[Any]]]:
    has_test = any(r.get("test_macro_f1") is not None for r in rows)
    metrics = ["macro_precision", "macro_recall", "macro_f1", "macro_f1_common", "weighted_f1",
               "accuracy"]
    head = ["model", "FlagLimit", "seeds"] + [f"val {FIELD_NAMES[m]}" for m in metrics]
    if has_test:
        head += [f"test {FIELD_NAMES[m]}" for m in metrics]
    groups = {m: group(rows, f"val_{m}") for m in metrics}
    tgroups = {m: group(rows, f"test_{m}") for m in metrics} if has_test else {}
    out = []
    for model, per in groups["macro_f1"].items():
        for limit, s in per.items():
            line: list[Any] = [model, limit, s.n]
            line += [_cell(groups[m].get(model, {}).get(limit)) for m in metrics]
            if has_test:
                line += [_cell(tgroups[m].get(model, {}).get(limit)) for m in metrics]
            out.append(line)
    return head, out


def figure2(rows: list[dict], path: Path) -> str:
    """Macro-F1 against FlagLimit per model: the mean over seeds, the band min..max; one panel
    over all classes and one over the classes common to every run (validation; test dashed)."""
    plt = _mpl()
    limits = limits_of(rows)
    x = {lim: i for i, lim in enumerate(limits)}
    has_test = any(r.get("test_macro_f1") is not None for r in rows)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, key, title in ((axes[0], "macro_f1", "all classes of each run"),
                           (axes[1], "macro_f1_common", "classes present at every scale")):
        for i, (model, per) in enumerate(group(rows, f"val_{key}").items()):
            c = colours[i % len(colours)]
            xs = [x[lim] for lim in per]
            ax.plot(xs, [s.mean for s in per.values()], "o-", color=c, label=f"{model} (val)")
            ax.fill_between(xs, [s.lo for s in per.values()], [s.hi for s in per.values()],
                            color=c, alpha=0.18, linewidth=0)
            if has_test:
                tper = group(rows, f"test_{key}").get(model, {})
                if tper:
                    ax.plot([x[lim] for lim in tper], [s.mean for s in tper.values()], "s--",
                            color=c, alpha=0.8, label=f"{model} (test)")
        ax.set_xticks(range(len(limits)), limits)
        ax.set_xlabel("FlagLimit (cells per class)")
        ax.set_title(f"macro-F1, {title}", fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("macro-F1 (mean over seeds; band: min..max)")
    axes[1].legend(fontsize=8, loc="lower right")
    fig.suptitle("Figure 2: macro-F1 against FlagLimit", fontsize=11)
    return _png(fig, path)


def table4(rows: list[dict]) -> tuple[list[str], list[list[Any]]]:
    head = ["model", "parameters (M)", "size (MB)", "batch-1 latency (ms)", "GFLOPs / patch",
            "device"]
    out = []
    for model in sorted({r["model"] for r in rows}):
        mine = [r for r in rows if r["model"] == model]
        params = summarize(r.get("params") for r in mine)
        if params is None:
            continue
        mb = summarize(r.get("size_mb") for r in mine)
        lat = summarize(r.get("latency_b1_ms") for r in mine)
        gf = summarize(r.get("gflops") for r in mine)
        devices = sorted({str(r.get("cost_device") or "") for r in mine} - {""})
        out.append([model, f"{params.mean / 1e6:.3f}", f"{mb.mean:.2f}" if mb else "",
                    f"{lat.mean:.3f} ± {lat.sd:.3f}" if lat else "",
                    f"{gf.mean:.4f}" if gf else "", ", ".join(devices)])
    return head, out


def _blur_keys(rows: list[dict], mode: str) -> list[tuple[float, str]]:
    keys = {k for r in rows for k in r if k.startswith(f"blur_{mode}_d_macro_f1_")}
    return sorted((float(k.rsplit("_", 1)[1]), k) for k in keys)


def _largest_limit_rows(rows: list[dict]) -> dict[str, list[dict]]:
    """Per model, its runs at its largest FlagLimit (the study measures blur on those)."""
    from trainer.formats.sweep_results import limit_order

    out: dict[str, list[dict]] = {}
    for model in sorted({r["model"] for r in rows}):
        mine = [r for r in rows if r["model"] == model]
        top = max((r["flag_limit"] for r in mine), key=limit_order)
        out[model] = [r for r in mine if r["flag_limit"] == top]
    return out


def table5(rows: list[dict]) -> tuple[list[str], list[list[Any]]]:
    head = ["model", "FlagLimit"]
    keys = [(mode, s, k) for mode in ("post", "pre") for s, k in _blur_keys(rows, mode)]
    head += [f"Δ macro-F1 {mode} σ={s:g}" for mode, s, _ in keys]
    head += ["drop slope post", "drop slope pre"]
    out = []
    for model, mine in _largest_limit_rows(rows).items():
        line: list[Any] = [model, mine[0]["flag_limit"]]
        line += [_cell(summarize(r.get(k) for r in mine)) for _, _, k in keys]
        line += [_cell(summarize(r.get(f"drop_slope_{m}") for r in mine), 4)
                 for m in ("post", "pre")]
        out.append(line)
    return head, out


def figure_blur(rows: list[dict], mode: str, path: Path, number: int) -> str | None:
    keys = _blur_keys(rows, mode)
    if not keys:
        return None
    plt = _mpl()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for model, mine in _largest_limit_rows(rows).items():
        sigmas, means, los, his = [0.0], [0.0], [0.0], [0.0]
        for s, k in keys:
            summary = summarize(r.get(k) for r in mine)
            if summary is not None:
                sigmas.append(s)
                means.append(summary.mean)
                los.append(summary.lo)
                his.append(summary.hi)
        line, = ax.plot(sigmas, means, "o-", label=f"{model} (FlagLimit {mine[0]['flag_limit']})")
        ax.fill_between(sigmas, los, his, color=line.get_color(), alpha=0.18, linewidth=0)
    ax.axhline(-HURT_DELTA, color="grey", linestyle=":", linewidth=1)
    ax.set_xscale("symlog", linthresh=0.1)
    ax.set_xlabel("blur σ (pixels of the 40x40 patch)")
    ax.set_ylabel("Δ macro-F1 from clean")
    ax.set_title(f"Figure {number}: blur {mode}-resize", fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _png(fig, path)


def best_run(rows: list[dict]) -> dict | None:
    """The best seed's run of the (model, FlagLimit) with the highest mean validation
    macro-F1."""
    per = group(rows, "val_macro_f1")
    best = max(((m, lim, s.mean) for m, d in per.items() for lim, s in d.items()),
               key=lambda t: t[2], default=None)
    if best is None:
        return None
    cands = [r for r in rows if r["model"] == best[0] and r["flag_limit"] == best[1]]
    return max(cands, key=lambda r: r.get("val_macro_f1") or 0)


def confusion_figure(run: dict, path: Path) -> str | None:
    ev_path = Path(run["folder"]) / "evaluation.json"
    try:
        ev = json.loads(ev_path.read_text())
    except (OSError, ValueError):
        return None
    cm, classes = ev.get("confusion_normalized"), ev.get("classes")
    if not cm or not classes:
        return None
    plt = _mpl()
    k = len(classes)
    fig, ax = plt.subplots(figsize=(1.0 + 0.5 * k, 0.8 + 0.5 * k))
    im = ax.imshow(cm, vmin=0, vmax=1, cmap="Blues")
    ax.set_xticks(range(k), classes, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(k), classes, fontsize=8)
    for i in range(k):
        for j in range(k):
            if cm[i][j] >= 0.005:
                ax.text(j, i, f"{cm[i][j]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if cm[i][j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{run['run_id']}: normalised by true class", fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046)
    return _png(fig, path)


def sentences(rows: list[dict]) -> list[str]:
    """A few sentences read off the numbers."""
    out = []
    per = group(rows, "val_macro_f1")
    limits = limits_of(rows)
    n_seeds = max((s.n for d in per.values() for s in d.values()), default=0)
    out.append(f"{len(rows)} runs: {len(per)} models at {len(limits)} FlagLimits "
               f"({', '.join(limits)}), up to {n_seeds} seeds each.")
    for lim in limits:
        cands = [(m, d[lim]) for m, d in per.items() if lim in d]
        if len(cands) < 1:
            continue
        cands.sort(key=lambda t: -t[1].mean)
        text = f"At FlagLimit {lim}, {cands[0][0]} has the highest validation macro-F1 " \
               f"({cands[0][1].text()})"
        if len(cands) > 1:
            margin = cands[0][1].mean - cands[1][1].mean
            close = " — within the spread over seeds" if margin <= max(
                cands[0][1].sd, cands[1][1].sd) else ""
            text += f", {margin:.3f} ahead of {cands[1][0]}{close}"
        out.append(text + ".")
    test = group(rows, "test_macro_f1")
    if test:
        best = max(((m, lim, s) for m, d in test.items() for lim, s in d.items()),
                   key=lambda t: t[2].mean)
        out.append(f"On the test set the best is {best[0]} at FlagLimit {best[1]} "
                   f"(macro-F1 {best[2].text()}).")
    common = common_classes(rows)
    every = {c for r in rows for c in (r.get("classes") or "").split(";") if c}
    if every and len(common) < len(every):
        out.append(f"FlagMin leaves out {', '.join(sorted(every - set(common)))} in some runs: "
                   f"the common-class macro-F1 averages over {len(common)} classes.")
    for mode in ("post", "pre"):
        keys = _blur_keys(rows, mode)
        for model, mine in _largest_limit_rows(rows).items():
            hurt = next((s for s, k in keys
                         if (summ := summarize(r.get(k) for r in mine)) is not None
                         and summ.mean < -HURT_DELTA), None)
            if not keys:
                continue
            if hurt is None:
                out.append(f"{model} ({mode}-resize blur): macro-F1 falls by less than "
                           f"{HURT_DELTA} up to σ = {keys[-1][0]:g}.")
            else:
                out.append(f"{model} ({mode}-resize blur): macro-F1 falls by more than "
                           f"{HURT_DELTA} from σ = {hurt:g}.")
    return out


# ---- the document -----------------------------------------------------------------------------
_STYLE = """body{font-family:sans-serif;max-width:1200px;margin:1em auto;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:12px}caption{text-align:left;
font-weight:bold;padding:4px 0}td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}
td:first-child,th:first-child{text-align:left}img{max-width:100%}h2{margin-top:1.6em}"""


def write_report(sources, out: str | os.PathLike, title: str = "Sweep report") -> list[Path]:
    """Write the HTML report to ``out`` and its PNG/CSV files beside it; returns those files.
    ``sources``: sweep folder(s) or folders of run folders."""
    out = Path(out)
    if isinstance(sources, str | os.PathLike):
        sources = [sources]
    rows = collect(sources, complete_only=False)
    rows = [r for r in rows if r.get("val_macro_f1") is not None]
    if not rows:
        raise ValueError(f"{', '.join(map(str, sources))}: no evaluated runs to report on")
    out.parent.mkdir(parents=True, exist_ok=True)
    stem = out.with_suffix("")
    files: list[Path] = []

    def side(suffix: str) -> Path:
        p = Path(f"{stem}-{suffix}")
        files.append(p)
        return p

    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
             f"</title><style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>",
             "<h2>Summary</h2><ul>" + "".join(f"<li>{html.escape(s)}</li>"
                                              for s in sentences(rows)) + "</ul>"]
    from trainer.formats.sweep_results import write_results

    write_results(side("results.csv"), rows)
    head, body = table3(rows)
    _write_csv(side("table3.csv"), head, body)
    parts.append("<h2>Table 3: macro precision, recall and F1</h2>"
                 + _table_html(head, body, "mean ± sd over seeds (validation; test where a test "
                               "patch set was given)"))
    img = figure2(rows, side("figure2-scaling.png"))
    parts.append(f"<h2>Figure 2: scaling</h2><img alt='Figure 2' src='data:image/png;base64,"
                 f"{img}'>")
    head, body = table4(rows)
    _write_csv(side("table4.csv"), head, body)
    parts.append("<h2>Table 4: cost</h2>" + _table_html(
        head, body, "parameters, size, batch-1 latency (mean ± sd over runs) and GFLOPs per "
                    "40x40 patch, measured on the device named"))
    head, body = table5(rows)
    _write_csv(side("table5.csv"), head, body)
    parts.append("<h2>Table 5: blur robustness</h2>" + _table_html(
        head, body, "change of validation macro-F1 from clean, mean ± sd over seeds, at each "
                    "model's largest FlagLimit; drop slope: accuracy per unit of log2(1 + σ)"))
    for mode, number in (("post", 4), ("pre", 5)):
        img_b = figure_blur(rows, mode, side(f"figure{number}-blur-{mode}.png"), number)
        if img_b is None:
            files.pop()
            parts.append(f"<h2>Figure {number}: blur {mode}-resize</h2><p>Not measured (the "
                         "patch sets keep no source crops, or robustness was off).</p>")
        else:
            parts.append(f"<h2>Figure {number}: blur {mode}-resize</h2><img alt='Figure "
                         f"{number}' src='data:image/png;base64,{img_b}'>")
    best = best_run(rows)
    if best is not None:
        img_c = confusion_figure(best, side("confusion-best.png"))
        if img_c is not None:
            parts.append(f"<h2>Confusion matrix of the best model</h2><p>"
                         f"{html.escape(best['run_id'])} (validation macro-F1 "
                         f"{best['val_macro_f1']:.3f})</p><img alt='confusion' "
                         f"src='data:image/png;base64,{img_c}'>")
        else:
            files.pop()
    parts.append("</body></html>")
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text("\n".join(parts), encoding="utf-8")
    tmp.replace(out)
    return files
