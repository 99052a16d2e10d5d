"""The landing pages: one index per scale (demo, cpu-scale, full) and `reports/index.html` over them,
and the finishing of every rendered notebook page of a scale.

Plain HTML (no scripts) in one folder per scale, so the reports read offline. The index step also gives
every notebook page a provenance header and a link back to the index, moves the CSS nbconvert inlines
into each page (~250 KB, the same for all) into one shared file, moves the figures nbconvert embeds as
base64 into files beside the pages (`img/`, lossless WebP: ~40% smaller than the base64 PNG they
were, which kept the CPU-scale reports over their 15 MB budget), folds long runs of figures, and ships
the tidy CSV, the per-run JSON and the config files beside the pages, linked from them.
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import html
import io
import json
import re
import shutil
from pathlib import Path

import pandas as pd

from robustmvc import __version__, registry, variants
from robustmvc import claims as claims_mod, tables
from robustmvc.files import atomic_path, check_folder, read_json, write_json
from robustmvc.lineage import PACKAGE_ROOT, changed_files, changes_text as lineage_changes, git_state, shown as shown_path
from robustmvc.pages import RUNTIME_CLASS
from robustmvc.tables import DATASET_ORDER, MODEL_ORDER

STYLE = """
body{font-family:system-ui,sans-serif;max-width:70rem;margin:2rem auto;padding:0 1rem;color:#222}
table{border-collapse:collapse;margin:1rem 0}th,td{border:1px solid #ccc;padding:.3rem .6rem;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}pre{background:#f7f7f7;padding:.8rem;overflow:auto}
.muted{color:#666}.grid td{text-align:center}.grid a{margin:0 .15rem}
"""
# the header every notebook page gets (the notebooks' own CSS is JupyterLab's; this is added to it)
HEADER_STYLE = """
.provenance{font:13px/1.5 system-ui,sans-serif;background:#f4f6f8;border-bottom:1px solid #d0d7de;
padding:.5rem 1rem;margin:0 0 1rem 0;color:#333}.provenance a{color:#0b5cad}
.provenance dl{display:flex;flex-wrap:wrap;gap:.2rem 1.2rem;margin:.3rem 0 0 0}
.provenance dt{font-weight:600;display:inline}.provenance dd{display:inline;margin:0 0 0 .3rem}
.jp-OutputArea-output pre{white-space:pre-wrap;overflow-wrap:anywhere}
details.folded{margin:.5rem 0 1rem 0}details.folded>summary{cursor:pointer;color:#0b5cad;font:14px system-ui,sans-serif}
"""
FOLD_AFTER = 2  # figures of one cell shown before the rest is folded
IMAGES = "img"  # the folder of a scale's figures, beside its stage folders
WEBP_METHOD = 2  # libwebp's effort, 0-6: 2 is within 5% of 6's size at a third of its time (~0.2 s a figure)


def _page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>\n")


def _write(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def ship_data(results: Path, reports: Path, configs: list[str]) -> dict[str, str]:
    """Copy the tidy CSV, every per-run metrics JSON and the config files under `reports/data/`, so the
    pages can link them and the folder stands alone. Returns {what: path relative to `reports`}."""
    data = reports / "data"
    shipped = {}
    tidy = results / "metrics" / "all.csv"
    data.mkdir(parents=True, exist_ok=True)
    if tidy.is_file():
        shutil.copyfile(tidy, data / "all.csv")
        shipped["all.csv"] = "data/all.csv"
    for f in sorted((results / "metrics").rglob("*.json")):
        target = data / "metrics" / f.relative_to(results / "metrics")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, target)
    if (data / "metrics").is_dir():
        shipped["per-run JSON"] = "data/metrics/"
    for c in configs:
        if Path(c).is_file():
            (data / "config").mkdir(parents=True, exist_ok=True)
            shutil.copyfile(c, data / "config" / Path(c).name)
            shipped[shown_path(c)] = f"data/config/{Path(c).name}"
    return shipped


def benchmark_of(results: Path, stage: str, name: str) -> dict[str, float] | None:
    """Snakemake's benchmark of the job that rendered reports/{stage}/{name}.html: wall and CPU seconds."""
    f = results / "benchmarks" / stage / f"{name}.tsv"
    if not f.is_file():
        return None
    lines = f.read_text().splitlines()
    if len(lines) < 2:
        return None
    row = dict(zip(lines[0].split("\t"), lines[1].split("\t")))
    try:
        return {"seconds": float(row["s"]), "cpu_seconds": float(row.get("cpu_time", "nan"))}
    except ValueError:
        return None


def run_date(results: Path, stage: str, name: str, page: Path) -> str:
    """When the page's notebook finished: papermill's end time in the executed notebook, else the
    page's modification time."""
    nb = results / "notebooks" / stage / f"{name}.ipynb"
    end = None
    if nb.is_file():
        try:
            end = json.loads(nb.read_text())["metadata"]["papermill"]["end_time"]
        except (ValueError, KeyError):
            end = None
    when = dt.datetime.fromisoformat(end) if end else dt.datetime.fromtimestamp(page.stat().st_mtime, dt.timezone.utc)
    return when.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def run_json(page: Path, reports: Path) -> str | None:
    """The shipped metrics JSON of the run a train or attack page shows (relative to `reports`), if any:
    `{dataset}-{model}-seed{s}` -> its clean record, `{dataset}-{model}-{variant}-{protocol}-seed{s}` -> the
    attack's."""
    m = re.fullmatch(r"([^-]+)-(.+)-seed(\d+)", page.stem)
    if not m:
        return None
    dataset, rest, seed = m.groups()
    for model_dir in sorted((reports / "data" / "metrics" / dataset).glob("*"), key=lambda d: -len(d.name)):
        if rest == model_dir.name:
            variant = "clean"
        elif rest.startswith(model_dir.name + "-"):
            variant = rest[len(model_dir.name) + 1:]
        else:
            continue
        base, _, protocol = variant.rpartition("-")
        run = model_dir / base / protocol if protocol in ("paper", "strict") else model_dir / variant
        found = run / f"seed{seed}.json"
        return found.relative_to(reports).as_posix() if found.is_file() else None
    return None


def changes_text(dirty: bool | None, changed: list[str] | None) -> str:
    """What a dirty flag says on a page: the files that differed from the commit, when they were recorded."""
    return f" (with {lineage_changes(changed)})" if dirty else ""


def provenance_header(page: Path, reports: Path, results: Path, commit: tuple[str, bool, list[str]],
                      shipped: dict[str, str], runtime: dict | None, date: str) -> str:
    """The header of one notebook page: a link back to the index, the date, the commit the notebook ran
    at and the one the reports were built at (each with the files that differed from it), config files (linked), device,
    threads, precision and the job's compute time."""
    stage, name = page.parent.name, page.stem
    up = "../" * len(page.parent.relative_to(reports).parts)
    bench = benchmark_of(results, stage, name)
    sha, dirty, changed = commit
    runtime = runtime or {}
    configs = ", ".join(f"<a href='{up}{html.escape(path)}'>{html.escape(c)}</a>" for c, path in shipped.items()
                        if path.startswith("data/config/")) or "not recorded"
    links = {what: path for what, path in shipped.items() if path == "data/all.csv"}
    own = run_json(page, reports)
    if own:
        links["this run's JSON"] = own
    data = " &middot; ".join(f"<a href='{up}{html.escape(path)}'>{html.escape(what)}</a>" for what, path in links.items())
    items = {
        "date": html.escape(date),
        "run at commit": (html.escape(runtime["commit"] + changes_text(runtime.get("dirty"), runtime.get("changed")))
                          if runtime.get("commit") else "not recorded"),
        "reports built at": html.escape(sha + changes_text(dirty, changed)),
        "config": configs,
        "device": html.escape(str(runtime.get("device", "not recorded"))),
        "machine": html.escape(str(runtime.get("machine", "not recorded"))),
        "threads": html.escape(str(runtime.get("threads", "not recorded"))),
        "precision": html.escape(str(runtime.get("precision", "fp32"))),
        "compute": (f"{bench['seconds']:.1f} s wall, {bench['cpu_seconds']:.1f} s CPU" if bench else "not recorded"),
    }
    fields = "".join(f"<div><dt>{k}</dt><dd>{v}</dd></div>" for k, v in items.items())
    return (f"<header class='provenance'><a href='{up}index.html'>&larr; index of "
            f"{html.escape(reports.name)}</a> &middot; <b>{html.escape(stage)} / {html.escape(name)}</b>"
            + (f" &middot; data: {data}" if data else "") + f"<dl>{fields}</dl></header>")


def shared_css(soup, reports: Path, page: Path) -> None:
    """Move the page's <head> styles into one CSS file of the report folder (named by its content, so
    pages rendered by another nbconvert keep theirs) and link it; already moved styles stay linked."""
    styles = soup.head.find_all("style") if soup.head else []
    if not styles:
        return
    text = "\n".join(s.string or "" for s in styles) + HEADER_STYLE
    name = f"style-{hashlib.sha256(text.encode()).hexdigest()[:10]}.css"
    css = reports / name
    if not css.is_file():
        with atomic_path(css) as tmp:
            tmp.write_text(text)
    for s in styles:
        s.decompose()
    up = "../" * len(page.parent.relative_to(reports).parts)
    soup.head.append(soup.new_tag("link", rel="stylesheet", href=f"{up}{name}"))


def figure_file(data: bytes) -> tuple[bytes, str]:
    """(bytes, suffix) of an embedded PNG as the file it becomes: lossless WebP when smaller (always, for
    the report's palette PNGs: ~23% less), else the PNG itself (also what an image Pillow cannot read
    stays)."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            out = io.BytesIO()
            image.save(out, format="WEBP", lossless=True, method=WEBP_METHOD)
    except (OSError, ValueError):
        return data, "png"
    return (out.getvalue(), "webp") if out.tell() < len(data) else (data, "png")


def sidecar_figures(soup, reports: Path, page: Path) -> set[str]:
    """Move every base64 PNG of the page into `reports/img/`, named by its content (the same figure on two
    pages is one file), and point the <img> at it; returns the names of every figure file the page shows."""
    prefix = "../" * len(page.parent.relative_to(reports).parts) + f"{IMAGES}/"
    shown = set()
    for img in soup.find_all("img", src=True):
        src = img["src"]
        if src.startswith("data:image/png;base64,"):
            data, suffix = figure_file(base64.b64decode(src.partition(",")[2]))
            name = f"{hashlib.sha256(data).hexdigest()[:16]}.{suffix}"
            target = reports / IMAGES / name
            if not target.is_file():
                target.parent.mkdir(exist_ok=True)
                with atomic_path(target) as tmp:
                    tmp.write_bytes(data)
            img["src"] = prefix + name
        if img["src"].startswith(prefix):
            shown.add(img["src"][len(prefix):])
    return shown


def fold_figures(soup, keep: int = FOLD_AFTER) -> int:
    """In every cell whose output holds more than `keep` images, fold the outputs after the `keep`-th
    image into one <details>; returns how many cells were folded."""
    folded = 0
    for area in soup.select("div.jp-OutputArea"):
        if area.find("details", class_="folded"):
            continue
        children = area.find_all("div", class_="jp-OutputArea-child", recursive=False)
        shown, cut = 0, None
        for i, child in enumerate(children):
            if child.find("img"):
                shown += 1
                if shown == keep:
                    cut = i + 1
        if shown <= keep or cut is None or cut >= len(children):
            continue
        rest = children[cut:]
        n_more = sum(1 for c in rest if c.find("img"))
        details = soup.new_tag("details", attrs={"class": "folded"})
        summary = soup.new_tag("summary")
        summary.string = f"{n_more} more figure{'s' if n_more != 1 else ''}"
        details.append(summary)
        rest[0].insert_before(details)
        for child in rest:
            details.append(child.extract())
        folded += 1
    return folded


def lift_runtime(soup) -> dict | None:
    """The runtime record a notebook displayed (robustmvc.pages.setup), removed from the page body."""
    node = soup.find("div", class_=RUNTIME_CLASS)
    if node is None:
        return None
    record = json.loads(node["data-runtime"])
    holder = node.find_parent("div", class_="jp-OutputArea-child") or node
    holder.decompose()
    return record


def finish_page(page: Path, reports: Path, results: Path, commit: tuple[str, bool, list[str]],
                shipped: dict[str, str]) -> set[str]:
    """Header, shared CSS, figure files and folded figures for one rendered notebook page; running it
    again on a finished page only refreshes the header (the runtime record moves into the header's data).
    Returns the names of the figure files the page shows."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(page.read_text(), "html.parser")
    old = soup.select_one("header.provenance")
    runtime = lift_runtime(soup)
    if runtime is None and old is not None and old.has_attr("data-runtime"):
        runtime = json.loads(old["data-runtime"])
    # the first pass dates the page (finishing it changes its modification time)
    date = old["data-date"] if old is not None and old.has_attr("data-date") else run_date(
        results, page.parent.name, page.stem, page)
    if old is not None:
        old.decompose()
    shared_css(soup, reports, page)
    figures = sidecar_figures(soup, reports, page)
    fold_figures(soup)
    header = BeautifulSoup(provenance_header(page, reports, results, commit, shipped, runtime, date),
                           "html.parser").header
    header["data-date"] = date
    if runtime:
        header["data-runtime"] = json.dumps(runtime)
    soup.body.insert(0, header)
    for node in list(soup.contents):  # keep the top level from gaining a blank line per pass
        if isinstance(node, str) and not node.strip() and type(node).__name__ == "NavigableString":
            node.extract()
    with atomic_path(page) as tmp:
        tmp.write_text(str(soup))
    return figures


def clean_table(results: Path) -> str:
    """Clean ACC/NMI/ARI, mean +- sample std over seeds (as Table 1), one row per (dataset, model), from the
    evaluation's tidy table (`metrics/all.csv`: the runs the config names, not every file on disk)."""
    tidy = results / "metrics" / "all.csv"
    if not tidy.is_file():
        return "<p class='muted'>No clean metrics yet (the evaluation notebook writes metrics/all.csv).</p>"
    table = pd.read_csv(tidy)
    clean = table[(table["attack"] == "none") & (table["phase"] == "pre")]
    if clean.empty:
        return "<p class='muted'>No clean metrics yet.</p>"
    rows = []
    for (dataset, model), runs in clean.groupby(["dataset", "model"], sort=True):
        vals = []
        for key in ("acc", "nmi", "ari"):
            x = runs[key].to_numpy()
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
            f" &middot; {machines_text(scale.get('machines') or [])}"
            f" &middot; compute {seconds / 3600:.1f} h (sum of every job's wall time)</p>")


def machines_text(machines: list[dict]) -> str:
    """Where the runs were made (`claims.machines`), as HTML: one machine in a phrase; several, each with
    its runs."""
    def one(m):
        if m["machine"] == "not recorded":
            return f"machine not recorded ({m['runs']} runs written before provenance was recorded)"
        return (f"{m['machine']}, torch {m['torch']}, {m['precision']}, {m['threads']} thread(s), "
                f"commit {', '.join(m['commits'])}: {m['runs']} runs")

    if not machines:
        return "machine not recorded"
    if len(machines) == 1:
        return "machine " + html.escape(one(machines[0]))
    return ("runs from " + str(len(machines)) + " machines: " + "; ".join(
        f"{html.escape(one(m))} (<small>{html.escape(', '.join(m.get('which', [])))}</small>)" for m in machines))


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
                why = claims_mod.why_text(c)
                tds.append(f"<td style='background:{VERDICT_COLOURS[c['verdict']]};text-align:left'>"
                           f"<a href='{html.escape(card['evidence'])}'><b>{c['verdict']}</b></a>"
                           + (f" <i>({html.escape(why)})</i>" if why else "")
                           + f"<br><small>{html.escape(c['numbers'])}</small></td>")
        label = html.escape(text + (f" ({model})" if model else ""))
        body.append(f"<tr><td>{label}</td>{''.join(tds)}</tr>")
    omitted = "".join(f"<li><b>{html.escape(d)}</b>: {html.escape(why)}</li>" for d, why in card["left_out"].items())
    return (f"<h2>Scorecard: does the paper reproduce?</h2>{_scale_line(card['scale'], seconds)}"
            f"{claims_mod.bottom_line(claims, card['evidence'])}"
            + (f"<p class='rule-at-seeds'>{card['rule_at_seeds']}</p>" if card.get("rule_at_seeds") else "")
            + f"<table id='scorecard'>{head}{''.join(body)}</table>"
            f"<p class='muted'>{card['rule']} An inconclusive verdict says why: <i>too few seeds</i> (fewer paired "
            f"seeds than the rule needs) or <i>seed noise</i> (the seeds disagree), and the fewest seeds that could "
            f"decide it if the seeds' mean and spread held. Each verdict links to its evidence on the evaluation "
            f"page.</p>"
            + (f"<p>Left out:</p><ul>{omitted}</ul>" if omitted else ""))


VARIANT_ORDER = variants.ORDER


def _attack_pages(reports: Path, results: Path) -> list[tuple[str, str, str, int, str]]:
    """(dataset, model, variant, seed, href) of every attack page; names are
    `{dataset}-{model}-{variant}-{protocol}-seed{seed}.html`, split with the model names known from the
    results; the variant is shown with its protocol, `gan-both (paper)`."""

    known = set(MODEL_ORDER) | {p.name for p in results.glob("metrics/*/*") if p.is_dir()}
    rows = []
    for page in sorted((reports / "03_attack").glob("*.html")):
        m = re.fullmatch(r"([^-]+)-(.+)-seed(\d+)", page.stem)
        if not m:
            continue
        dataset, rest, seed = m.group(1), m.group(2), int(m.group(3))
        model = max((k for k in known if rest.startswith(k + "-")), key=len, default=None)
        if model is None:
            continue
        variant, _, protocol = rest[len(model) + 1:].rpartition("-")
        rows.append((dataset, model, f"{variant} ({protocol})", seed, f"03_attack/{page.name}"))
    return rows


def attack_grid(reports: Path, results: Path) -> str:
    """The attack pages as one model x attack table per dataset, each cell linking its seeds."""

    rows = _attack_pages(reports, results)
    if not rows:
        return ""
    order = lambda values, ref: sorted(values, key=lambda v: (ref.index(v) if v in ref else len(ref), v))
    parts = []
    for dataset in order({r[0] for r in rows}, DATASET_ORDER):
        part = [r for r in rows if r[0] == dataset]
        variants = sorted({r[2] for r in part}, key=lambda v: (*order([v.split(" ")[0]], VARIANT_ORDER), v))
        head = "<tr><th>model</th>" + "".join(f"<th>{html.escape(v)}</th>" for v in variants) + "</tr>"
        body = []
        for model in order({r[1] for r in part}, MODEL_ORDER):
            cells = []
            for v in variants:
                links = [f"<a href='{href}' title='{html.escape(f'{dataset} {model} {v} seed {seed}')}'>s{seed}</a>"
                         for _, mo, va, seed, href in sorted(part, key=lambda r: r[3]) if mo == model and va == v]
                cells.append(f"<td>{' '.join(links) or '&ndash;'}</td>")
            body.append(f"<tr><td>{html.escape(model)}</td>{''.join(cells)}</tr>")
        parts.append(f"<h4>{html.escape(dataset)}</h4><table class='grid'>{head}{''.join(body)}</table>")
    return ("<h3>03_attack</h3><p class='muted'>One page per run: rows are models, columns attacks, "
            "s0, s1 the seeds.</p>" + "".join(parts))


FAMILY_HEADINGS = {"baseline": "baselines", "defense": "defenses", "related": "related systems"}


def train_links(pages: list[Path]) -> str:
    """The training pages (`02_train/{dataset}-{model}-seed{seed}.html`) grouped by the model's family in
    the registry (baselines, the paper's defenses, related systems), each group in table order; a page of a
    model the registry no longer knows goes under `other`."""
    groups: dict[str, list[tuple]] = {}
    for page in pages:
        m = re.fullmatch(r"([^-]+)-(.+)-seed(\d+)", page.stem)
        model = m.group(2) if m else page.stem
        family = registry.MODELS[model].family if model in registry.MODELS else "other"
        rank = MODEL_ORDER.index(model) if model in MODEL_ORDER else len(MODEL_ORDER)
        groups.setdefault(family, []).append((rank, page.stem, page.name))
    parts = []
    for family in [*FAMILY_HEADINGS, *sorted(set(groups) - set(FAMILY_HEADINGS))]:
        if family in groups:
            items = "".join(f"<li><a href='02_train/{name}'>{html.escape(stem)}</a></li>"
                            for _, stem, name in sorted(groups[family]))
            parts.append(f"<h4>{html.escape(FAMILY_HEADINGS.get(family, family))}</h4><ul>{items}</ul>")
    return "<h3>02_train</h3>" + "".join(parts)


def report_links(reports: Path, results: Path | None = None) -> str:
    """Links to every rendered page: a list per stage, the attack stage as a model x attack grid."""
    parts = []
    for stage in sorted(p for p in reports.iterdir() if p.is_dir() and p.name != "data"):
        pages = sorted(stage.glob("*.html"))
        if stage.name == "03_attack" and results is not None and pages:
            grid = attack_grid(reports, results)
            if grid:
                parts.append(grid)
                continue
        if stage.name == "02_train" and pages:
            parts.append(train_links(pages))
        elif pages:
            items = "".join(f"<li><a href='{stage.name}/{p.name}'>{html.escape(p.stem)}</a></li>" for p in pages)
            parts.append(f"<h3>{html.escape(stage.name)}</h3><ul>{items}</ul>")
    return "".join(parts) or "<p class='muted'>No rendered reports.</p>"


def claim_counts(results: Path) -> dict[str, int]:
    """How many verdicts of the scorecard (claim x dataset x protocol) hold, fail, stay inconclusive or
    are not informative on this scale's numbers; zeros before the evaluation notebook wrote it."""
    counts = {"holding": 0, "failing": 0, "inconclusive": 0, "not informative": 0}
    path = results / "metrics" / "scorecard.json"
    if not path.is_file():
        return counts
    names = {"holds": "holding", "fails": "failing", "inconclusive": "inconclusive",
             "not informative": "not informative"}
    for claim in read_json(path)["claims"]:
        counts[names[claim["verdict"]]] += 1
    return counts


def scale_summary(results: Path, reports: Path, when: str, commit: tuple[str, bool, list[str]]) -> dict:
    """What ran at this scale, for the landing page's line about it (also written as summary.json): the
    runs of the evaluation's tidy table (`metrics/all.csv`), the devices and machines of the scorecard's
    scale, and the files that differed from the commit the reports were built at."""
    tidy = results / "metrics" / "all.csv"
    clean = pd.read_csv(tidy).query("attack == 'none'") if tidy.is_file() else pd.DataFrame(
        columns=["dataset", "model", "seed"])
    card = results / "metrics" / "scorecard.json"
    scale = read_json(card)["scale"] if card.is_file() else {}
    return {"scale": reports.name, "date": when, "commit": commit[0], "dirty": commit[1], "changed": commit[2],
            "datasets": sorted(set(clean["dataset"])), "models": sorted(set(clean["model"])),
            "seeds": sorted({int(s) for s in clean["seed"]}), "devices": scale.get("device", []),
            "machines": sorted({m["machine"] for m in scale.get("machines", [])}),
            "claims": claim_counts(results)}


def unroot(text: str, roots) -> str:
    """`text` with each absolute form of the folders `roots` replaced by the path an output may show
    (`lineage.shown`: relative to the working folder, else the folder's name), so no page or shipped file
    names a folder of the machine that built it."""
    for root in roots:
        root = Path(root)
        for form in sorted({str(root.absolute()), str(root.resolve())}, key=len, reverse=True):
            text = text.replace(form, shown_path(root))
    return text


def _unroot_json(value, roots):
    if isinstance(value, str):
        return unroot(value, roots)
    if isinstance(value, list):
        return [_unroot_json(v, roots) for v in value]
    if isinstance(value, dict):
        return {k: _unroot_json(v, roots) for k, v in value.items()}
    return value


def unroot_folder(reports: str | Path, roots) -> int:
    """Rewrite every page, shipped JSON, CSV and config file of a report folder with `unroot` (a JSON file
    value by value, so escaped characters in a path still match); returns how many files changed. The
    report step runs it over what it wrote; it also cleans a folder built before it did."""
    changed = 0
    for f in sorted(Path(reports).rglob("*")):
        if not f.is_file() or f.suffix not in (".html", ".json", ".csv", ".yaml", ".yml"):
            continue
        text = f.read_text()
        if f.suffix == ".json":
            value = json.loads(text)
            new = _unroot_json(value, roots)
            if new == value:
                continue
            write_json(f, new)
        else:
            new = unroot(text, roots)
            if new == text:
                continue
            _write(f, new)
        changed += 1
    return changed


def write_index(results: str | Path, reports: str | Path, configs: list[str], landing: str | Path | None = None) -> Path:
    """The scale's index, after finishing every notebook page under `reports` (header, back link,
    shared CSS, figure files, folded figures) and shipping the data they link; with `landing` (the
    `index.html` of the folder above `reports`), the landing page too. Nothing is written outside
    `reports` and `landing`, and nothing written names the results or reports folder by its absolute
    path (`unroot_folder`). Figure files no page shows any more (a page rendered again) are removed.
    A results folder without metrics, an empty or root folder and a landing elsewhere are refused
    before anything is written."""
    results, reports = check_folder(results, "--results", "results/demo"), check_folder(reports, "--reports", "reports/demo")
    if not results.is_dir():
        raise FileNotFoundError(f"the results folder {results} does not exist; pass the results_dir the workflow "
                                "wrote (e.g. results/demo)")
    if not any((results / "metrics").glob("*/*/*/seed*.json")):
        raise ValueError(f"the results folder {results} holds no run metrics (metrics/DATASET/MODEL/...); pass the "
                         "results_dir the workflow wrote, or run the workflow first")
    if landing is not None and Path(landing).resolve() != reports.resolve().parent / "index.html":
        raise ValueError(f"--landing {landing} is not index.html of the folder above --reports {reports}; "
                         f"pass {reports.parent / 'index.html'}")
    reports.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    commit = (*git_state(), changed_files())
    shipped = ship_data(results, reports, configs)
    shown = set()
    for page in sorted(reports.glob("*/*.html")):
        shown |= finish_page(page, reports, results, commit, shipped)
    for figure in (reports / IMAGES).glob("*"):
        if figure.name not in shown:
            figure.unlink()
    summary = scale_summary(results, reports, now, commit)
    write_json(reports / "summary.json", summary)
    links = " &middot; ".join(f"<a href='{html.escape(path)}'>{html.escape(what)}</a>" for what, path in shipped.items())
    config_text = "".join(f"<h3>{html.escape(shown_path(c))}</h3><pre>{html.escape(Path(c).read_text())}</pre>"
                          for c in configs if Path(c).is_file())
    body = (f"<p><a href='../index.html'>&larr; all scales</a></p>"
            f"<header class='provenance'><p class='muted'>Built {now} &middot; robustmvc {__version__} &middot; "
            f"commit {html.escape(commit[0] + changes_text(commit[1], commit[2]))} &middot; "
            f"device {html.escape(', '.join(summary['devices']) or 'not recorded')} &middot; "
            f"machine {html.escape(', '.join(summary['machines']) or 'not recorded')} &middot; "
            f"results in <code>{html.escape(shown_path(results))}</code></p>"
            f"<p class='muted'>Data beside the pages: {links or 'none yet'}</p></header>"
            f"{scorecard_section(results)}"
            f"<h2>Clean clustering on the evaluation half</h2>{clean_table(results)}"
            f"<h2>Reports</h2>{report_links(reports, results)}"
            f"<h2>Wall time per stage</h2>{stage_times(results)}"
            f"<h2>Configuration</h2>{config_text}")
    index = reports / "index.html"
    _write(index, _page(f"robustmvc: {reports.name}", body))
    unroot_folder(reports, [results, reports])
    if landing is not None:
        write_landing(reports.parent)
    return index


def landing_line(summary: dict) -> str:
    """One line per scale: what ran, where, and how the paper's claims fared, linking into the scale."""
    c = summary.get("claims", {})
    machines = summary.get("machines") or []
    what = (f"datasets {', '.join(summary.get('datasets', []))}; {len(summary.get('models', []))} models; "
            f"seeds {', '.join(map(str, summary.get('seeds', [])))}; "
            f"device {', '.join(summary.get('devices', [])) or 'not recorded'}; "
            f"machine {', '.join(machines) if machines else 'not recorded (built before machines were recorded)'}; "
            f"built {summary.get('date', '')}")
    claims_ = (f"verdicts: {c.get('holding', 0)} holding, {c.get('failing', 0)} failing, "
               f"{c.get('inconclusive', 0)} inconclusive, {c.get('not informative', 0)} not informative")
    scale = summary["scale"]
    return (f"<a href='{html.escape(scale)}/index.html'><b>{html.escape(scale)}</b></a>: {html.escape(what)} "
            f"&middot; <a href='{html.escape(scale)}/index.html#scorecard'>{html.escape(claims_)}</a>")


def scale_verdicts(scale: Path) -> tuple[list[dict], str]:
    """(the verdicts of a built scale with their reasons, a note) for its bottom line: `claims.check` on the
    tidy table the scale ships (`data/all.csv`), so a scale built before reasons were recorded gets them
    too. Where they differ from the scale's own scorecard (`data/metrics/scorecard.json`: made by another
    version of the claims' rules), the scorecard's verdicts stand, without reasons, and the note says so:
    the landing page never states other verdicts than the scale's pages."""
    tidy, card = scale / "data" / "all.csv", scale / "data" / "metrics" / "scorecard.json"
    if not (tidy.is_file() and card.is_file()):
        return [], ""
    verdicts = claims_mod.scorecard(claims_mod.check(pd.read_csv(tidy)), {}, {})["claims"]
    recorded = read_json(card)["claims"]
    ours = {(c["claim"], c["dataset"], c["protocol"], c["model"]): c["verdict"] for c in verdicts}
    theirs = {(c["claim"], c["dataset"], c["protocol"], c["model"]): c["verdict"] for c in recorded}
    if ours != theirs:
        return recorded, (f"{scale.name}'s scorecard was made by another version of the claims' rules: its verdicts "
                          f"are shown as it gave them; rebuild that scale's reports for the reasons of each")
    return verdicts, ""


PAPER_TABLE = PACKAGE_ROOT / "config" / "paper_table1.yaml"  # the paper's numbers (the evaluate rule's paper_table)


def table1_paragraph(scale: Path) -> str:
    """The main differences from the paper's Table 1 (`tables.table1_findings`) on the tidy table a scale
    ships, linking to the table; '' without it."""
    tidy = scale / "data" / "all.csv"
    if not (tidy.is_file() and PAPER_TABLE.is_file()):
        return ""
    text = tables.table1_findings(tables.table1(pd.read_csv(tidy), tables.load_paper(PAPER_TABLE)), tables.TOLERANCE)
    link = f" <a href='{html.escape(scale.name)}/06_evaluate/evaluate.html#table1'>Table 1 beside the paper's</a>."
    return text.replace("</p>", link + "</p>", 1) if text else ""


def write_landing(root: str | Path) -> Path:
    """`reports/index.html`: per scale whose index exists, one line of what ran and the verdicts' counts
    (from its summary.json), then its bottom line in words (`claims.bottom_line` on `scale_verdicts`) and
    its main differences from the paper's Table 1, linking to the evidence; a bare link for a scale built before summaries were written."""
    root = Path(root)
    items = []
    for index in sorted(root.glob("*/index.html")):
        scale = index.parent
        summary_file = scale / "summary.json"
        if not summary_file.is_file():
            items.append(f"<li><a href='{html.escape(scale.name)}/index.html'>{html.escape(scale.name)}</a></li>")
            continue
        verdicts, note = scale_verdicts(scale)
        bottom = claims_mod.bottom_line(verdicts, f"{scale.name}/{claims_mod.EVIDENCE}") if verdicts else ""
        bottom = (f"<p class='muted'>{html.escape(note)}.</p>" if note else "") + bottom
        items.append(f"<li>{landing_line(read_json(summary_file))}{bottom}{table1_paragraph(scale)}</li>")
    body = ("<p>Reports of the AR-DMVC reproduction, one set per scale of the experiment: what ran, where, how "
            "many of the paper's claims hold on its numbers, and the bottom line in words. A claim is decided "
            "from per-seed paired values; undecided claims say whether they lack seeds or their seeds disagree.</p>"
            f"<ul>{''.join(items)}</ul>" if items else "<p class='muted'>No reports built yet.</p>")
    landing = root / "index.html"
    _write(landing, _page("robustmvc reports", body))
    return landing
