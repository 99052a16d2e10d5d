"""The landing pages: one index per scale (demo, cpu-scale, full) and `reports/index.html` over them.

Plain self-contained HTML (inline CSS, no scripts), so the reports read offline.
"""
from __future__ import annotations

import datetime as dt
import html
import subprocess
from pathlib import Path

import numpy as np

from robustmvc import __version__
from robustmvc.files import atomic_path, read_json

STYLE = """
body{font-family:system-ui,sans-serif;max-width:70rem;margin:2rem auto;padding:0 1rem;color:#222}
table{border-collapse:collapse;margin:1rem 0}th,td{border:1px solid #ccc;padding:.3rem .6rem;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}pre{background:#f7f7f7;padding:.8rem;overflow:auto}
.muted{color:#666}
"""


def _page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>\n")


def _write(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True).stdout.strip()
        return out.stdout.strip() + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def clean_table(results: Path) -> str:
    """Clean ACC/NMI/ARI, mean +- sample std over seeds (as Table 1), one row per (dataset, model)."""
    cells: dict[tuple[str, str], list[dict]] = {}
    for f in sorted(results.glob("metrics/*/*/clean/seed*.json")):
        dataset, model = f.parts[-4], f.parts[-3]
        cells.setdefault((dataset, model), []).append(read_json(f)["clean"])
    if not cells:
        return "<p class='muted'>No clean metrics yet.</p>"
    rows = []
    for (dataset, model), runs in sorted(cells.items()):
        vals = []
        for key in ("acc", "nmi", "ari"):
            x = np.array([r[key] for r in runs])
            vals.append(f"{x.mean():.3f} &plusmn; {x.std(ddof=1):.3f}" if len(x) > 1 else f"{x[0]:.3f}")
        rows.append(f"<tr><td>{dataset}</td><td>{model}</td><td>{len(runs)}</td>" +
                    "".join(f"<td>{v}</td>" for v in vals) + "</tr>")
    return ("<table><tr><th>dataset</th><th>model</th><th>seeds</th><th>ACC</th><th>NMI</th><th>ARI</th></tr>"
            + "".join(rows) + "</table>")


def benchmark_seconds(results: Path) -> dict[str, list[float]]:
    """Wall seconds of every job, per stage, from the benchmark files snakemake writes
    (`{results}/benchmarks/<stage>/*.tsv`, first column of the second line)."""
    stages = {}
    for stage in sorted(p for p in (results / "benchmarks").glob("*") if p.is_dir()):
        seconds = []
        for f in stage.glob("*.tsv"):
            lines = f.read_text().splitlines()
            if len(lines) > 1:
                seconds.append(float(lines[1].split("\t")[0]))
        stages[stage.name] = seconds
    return stages


def stage_times(results: Path) -> str:
    """Wall time per stage, summed over its jobs, from snakemake's benchmark files."""
    rows = [f"<tr><td>{stage}</td><td>{len(seconds)}</td><td>{sum(seconds):.1f}</td></tr>"
            for stage, seconds in benchmark_seconds(results).items()]
    if not rows:
        return "<p class='muted'>No stage timings recorded.</p>"
    return "<table><tr><th>stage</th><th>jobs</th><th>seconds</th></tr>" + "".join(rows) + "</table>"


VERDICT_COLOURS = {"holds": "#e3f4e1", "fails": "#fde2e1", "inconclusive": "#fff4d6", "not informative": "#eee"}


def _scale_line(scale: dict, seconds: float) -> str:
    def each(d):
        return ", ".join(f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}" for k, v in d.items())

    by_count: dict[int, list[str]] = {}
    for model, n in scale.get("seeds", {}).items():
        by_count.setdefault(n, []).append(model)
    seeds = "; ".join(f"{n} for {', '.join(ms)}" for n, ms in sorted(by_count.items(), reverse=True))
    ep = scale.get("epochs", {})
    return (f"<p class='scale'><b>Scale {html.escape(str(scale.get('scale')))}</b>: samples {html.escape(each(scale.get('samples', {})))}"
            f" &middot; encoder width {scale.get('encoder_width')} &middot; epochs {ep.get('baselines')} (baselines), "
            f"{ep.get('defenses')} (defenses), {ep.get('attack')} (attack) &middot; seeds {html.escape(seeds)} &middot; "
            f"eps {html.escape(each(scale.get('eps', {})))} &middot; device {html.escape(', '.join(scale.get('device', [])))}"
            f" &middot; compute {seconds / 3600:.1f} h (sum of every job's wall time)</p>")


def scorecard_section(results: Path) -> str:
    """The verdicts first: claim x dataset x protocol from `{results}/metrics/scorecard.json` (written by the
    evaluation notebook), each with its numbers and a link to the evidence, then the scale in one line
    (with the compute time summed from the benchmark files) and what was left out."""
    path = results / "metrics" / "scorecard.json"
    if not path.is_file():
        return "<p class='muted'>No scorecard yet (the evaluation notebook writes it).</p>"
    card = read_json(path)
    seconds = sum(sum(v) for v in benchmark_seconds(results).values())
    claims = card["claims"]
    datasets = list(dict.fromkeys(c["dataset"] for c in claims))
    protocols = list(dict.fromkeys(c["protocol"] for c in claims))
    cells = {(c["claim"], c["model"], c["dataset"], c["protocol"]): c for c in claims}
    rows = list(dict.fromkeys((c["claim"], c["model"] if c["claim"] == "both-beats-either" else None, c["text"])
                              for c in claims))
    head = ("<tr><th rowspan='2'>claim</th>" + "".join(f"<th colspan='{len(protocols)}'>{html.escape(d)}</th>"
                                                      for d in datasets)
            + "</tr><tr>" + "".join(f"<th>{html.escape(p)}</th>" for _ in datasets for p in protocols) + "</tr>")
    body = []
    for claim, model, text in rows:
        tds = []
        for d in datasets:
            for p in protocols:
                c = next((v for (cl, m, dd, pp), v in cells.items()
                          if cl == claim and dd == d and pp == p and (model is None or m == model)), None)
                if c is None:
                    tds.append("<td class='muted'>&ndash;</td>")
                    continue
                tds.append(f"<td style='background:{VERDICT_COLOURS[c['verdict']]};text-align:left'>"
                           f"<a href='{html.escape(card['evidence'])}'><b>{c['verdict']}</b></a>"
                           f"<br><small>{html.escape(c['numbers'])}</small></td>")
        label = html.escape(text + (f" ({model})" if model else ""))
        body.append(f"<tr><td>{label}</td>{''.join(tds)}</tr>")
    omitted = "".join(f"<li><b>{html.escape(d)}</b>: {html.escape(why)}</li>" for d, why in card["left_out"].items())
    return (f"<h2>Scorecard: does the paper reproduce?</h2>{_scale_line(card['scale'], seconds)}"
            f"<table id='scorecard'>{head}{''.join(body)}</table>"
            f"<p class='muted'>{card['rule']} Each verdict links to its evidence on the evaluation page.</p>"
            + (f"<p>Left out:</p><ul>{omitted}</ul>" if omitted else ""))


def report_links(reports: Path) -> str:
    parts = []
    for stage in sorted(p for p in reports.iterdir() if p.is_dir()):
        pages = sorted(stage.glob("*.html"))
        if pages:
            items = "".join(f"<li><a href='{stage.name}/{p.name}'>{html.escape(p.stem)}</a></li>" for p in pages)
            parts.append(f"<h3>{html.escape(stage.name)}</h3><ul>{items}</ul>")
    return "".join(parts) or "<p class='muted'>No rendered reports.</p>"


def write_index(results: str | Path, reports: str | Path, configs: list[str]) -> Path:
    results, reports = Path(results), Path(reports)
    reports.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    config_text = "".join(f"<h3>{html.escape(c)}</h3><pre>{html.escape(Path(c).read_text())}</pre>"
                          for c in configs if Path(c).is_file())
    body = (f"<p class='muted'>Built {now} &middot; robustmvc {__version__} &middot; commit {git_commit()} "
            f"&middot; results in <code>{html.escape(str(results))}</code></p>"
            f"{scorecard_section(results)}"
            f"<h2>Clean clustering on the evaluation half</h2>{clean_table(results)}"
            f"<h2>Reports</h2>{report_links(reports)}"
            f"<h2>Wall time per stage</h2>{stage_times(results)}"
            f"<h2>Configuration</h2>{config_text}")
    index = reports / "index.html"
    _write(index, _page(f"robustmvc: {reports.name}", body))
    write_landing(reports.parent)
    return index


def write_landing(root: str | Path) -> Path:
    """`reports/index.html`: one link per scale whose index exists."""
    root = Path(root)
    scales = sorted(p.parent.name for p in root.glob("*/index.html"))
    items = "".join(f"<li><a href='{s}/index.html'>{html.escape(s)}</a></li>" for s in scales)
    body = ("<p>Reports of the AR-DMVC reproduction, one set per scale of the experiment.</p>"
            f"<ul>{items}</ul>" if items else "<p class='muted'>No reports built yet.</p>")
    landing = root / "index.html"
    _write(landing, _page("robustmvc reports", body))
    return landing
