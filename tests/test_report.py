"""The finishing of rendered pages and the index pages, on hand-made pages and results (no DAG run)."""
import base64
import io
import json
import re

import numpy as np
import pytest
from PIL import Image

from robustmvc import claims, report, tables
from robustmvc.files import write_json
from robustmvc.pages import RUNTIME_CLASS
from conftest import ROOT, report_defects

CSS = "body{margin:0}" * 50


def png(i: int) -> bytes:
    """A small palette PNG like the report's figures: a different pattern for each `i`."""
    rng = np.random.default_rng(i)
    pixels = rng.integers(0, 4, (40, 60)).repeat(3, axis=0).repeat(3, axis=1).astype(np.uint8) * 60
    out = io.BytesIO()
    Image.fromarray(pixels).convert("RGB").quantize(colors=256).save(out, format="PNG", optimize=True)
    return out.getvalue()


def notebook_page(images: int) -> str:
    """A page shaped like nbconvert's lab template: inline head CSS, the runtime record as one output,
    and a cell whose outputs alternate a heading and an image."""
    record = json.dumps({"commit": "abc1234", "dirty": True, "changed": ["src/robustmvc/x.py"], "device": "cpu",
                         "machine": "Some CPU 9000", "threads": 3, "precision": "fp32"}).replace('"', "&quot;")
    outputs = "".join(f"<div class='jp-OutputArea-child'><h3>model {i}</h3></div>"
                      f"<div class='jp-OutputArea-child'><img alt='figure {i}' "
                      f"src='data:image/png;base64,{base64.b64encode(png(i)).decode()}'></div>"
                      for i in range(images))
    return (f"<!DOCTYPE html><html><head><style>{CSS}</style><style>.x{{color:red}}</style></head><body>"
            f"<div class='jp-OutputArea'><div class='jp-OutputArea-child'><div class='{RUNTIME_CLASS}' hidden "
            f"data-runtime=\"{record}\"></div></div></div>"
            f"<div class='jp-OutputArea'>{outputs}</div></body></html>")


def make_results(tmp_path):
    results, reports = tmp_path / "results", tmp_path / "reports" / "demo"
    for seed, post in ((0, 0.2), (1, 0.4)):
        write_json(results / "metrics" / "demo" / "comvc" / "clean" / f"seed{seed}.json",
                   {"clean": {"acc": 0.9, "nmi": 0.8, "ari": 0.7}})
        write_json(results / "metrics" / "demo" / "comvc" / "gan-both" / "paper" / f"seed{seed}.json",
                   {"device": "cpu", "protocol": "paper", "settings": {"eps": 0.3},
                    "clean": {"acc": 0.9, "nmi": 0.8, "ari": 0.7},
                    "attacked": {"acc": post, "nmi": 0.1, "ari": 0.1}})
    (results / "benchmarks" / "03_attack").mkdir(parents=True)
    (results / "benchmarks" / "03_attack" / "demo-comvc-gan-both-paper-seed0.tsv").write_text(
        "s\th:m:s\tmax_rss\tmean_load\tcpu_time\n12.50\t0:00:12\t100\t90\t11.25\n")
    tables.collect(results).to_csv(results / "metrics" / "all.csv", index=False)
    tidy = tables.collect(results)
    scale = {"scale": "demo", "seeds": {"comvc": 2}, "device": ["cpu"],
             "machines": [{"machine": "Some CPU 9000", "torch": "2.1", "precision": "fp32", "threads": 1, "runs": 4,
                           "commits": ["abc1234"]}]}
    write_json(results / "metrics" / "scorecard.json", claims.scorecard(claims.check(tidy), scale, {}))
    for seed in (0, 1):
        page = reports / "03_attack" / f"demo-comvc-gan-both-paper-seed{seed}.html"
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text(notebook_page(images=4))
    config = tmp_path / "demo.yaml"
    config.write_text("seeds: [0, 1]\n")
    return results, reports, config


def test_pages_get_header_shared_css_and_folded_figures_and_a_second_pass_changes_nothing(tmp_path):
    results, reports, config = make_results(tmp_path)
    report.write_index(results, reports, [str(config)])
    page = reports / "03_attack" / "demo-comvc-gan-both-paper-seed0.html"
    first = page.read_text()
    assert first.count("class=\"provenance\"") == 1 and 'href="../index.html"' in first
    assert "12.5 s wall, 11.2 s CPU" in first  # the job's benchmark
    assert "<dt>threads</dt><dd>3</dd>" in first and RUNTIME_CLASS not in first  # lifted into the header
    # a dirty tree says which files differed, and the machine is named
    assert "<dt>run at commit</dt><dd>abc1234 (with uncommitted changes to src/robustmvc/x.py)</dd>" in first
    assert "<dt>machine</dt><dd>Some CPU 9000</dd>" in first
    many = [f"f{i}.py" for i in range(8)]
    assert report.changes_text(True, many) == " (with uncommitted changes to f0.py, f1.py, f2.py, f3.py, f4.py and 3 more files)"
    assert report.changes_text(True, None).endswith("(which files was not recorded))") and report.changes_text(False, many) == ""
    assert 'href="../data/metrics/demo/comvc/gan-both/paper/seed0.json"' in first and 'href="../data/all.csv"' in first
    assert (reports / "data" / "metrics" / "demo" / "comvc" / "gan-both" / "paper" / "seed0.json").is_file()
    assert (reports / "data" / "config" / "demo.yaml").is_file()
    # the head CSS left the page for one shared file that both pages link
    assert "<style>" not in first and CSS not in first
    css = list(reports.glob("style-*.css"))
    assert len(css) == 1 and CSS in css[0].read_text() and f'href="../{css[0].name}"' in first
    # 4 figures in one cell: 2 shown, the other 2 (with their headings) folded
    shown, folded = first.split("<details")
    assert shown.count("<img") == 2 and folded.count("<img") == 2 and "2 more figures" in folded
    report.write_index(results, reports, [str(config)])
    assert page.read_text() == first


def test_figures_move_to_files_that_hold_the_same_pixels_and_orphans_go(tmp_path):
    results, reports, config = make_results(tmp_path)
    before = sum(len(p.read_text()) for p in reports.glob("*/*.html"))
    report.write_index(results, reports, [str(config)])
    page = (reports / "03_attack" / "demo-comvc-gan-both-paper-seed0.html").read_text()
    assert "data:image" not in page
    srcs = re.findall(r'<img alt="figure (\d)" src="([^"]+)"', page)
    assert len(srcs) == 4
    for i, src in srcs:
        assert src.startswith("../img/") and src.endswith(".webp")
        with Image.open(reports / "03_attack" / src) as moved, Image.open(io.BytesIO(png(int(i)))) as original:
            assert np.array_equal(np.asarray(moved.convert("RGB")), np.asarray(original.convert("RGB")))
    # both pages show the same four figures: four files, and the pages shrank by more than the figures' bytes
    files = sorted((reports / "img").iterdir())
    assert len(files) == 4
    after = sum(len(p.read_text()) for p in reports.glob("*/*.html"))
    assert before - after > 2 * sum(f.stat().st_size for f in files)
    # a page rendered again with other figures: the figures no page shows any more are removed
    (reports / "03_attack" / "demo-comvc-gan-both-paper-seed0.html").write_text(notebook_page(images=1))
    (reports / "03_attack" / "demo-comvc-gan-both-paper-seed1.html").write_text(notebook_page(images=1))
    report.write_index(results, reports, [str(config)])
    assert len(list((reports / "img").iterdir())) == 1


def test_index_has_the_attack_grid_and_the_landing_page_a_line_per_scale(tmp_path):
    results, reports, config = make_results(tmp_path)
    report.write_index(results, reports, [str(config)], landing=reports.parent / "index.html")
    index = (reports / "index.html").read_text()
    grid = index[index.index("class='grid'"):]
    assert "<th>gan-both (paper)</th>" in grid and "<td>comvc</td>" in grid
    assert "href='03_attack/demo-comvc-gan-both-paper-seed0.html'" in grid and ">s1</a>" in grid
    assert "href='../index.html'" in index and "class='provenance'" in index
    landing = (reports.parent / "index.html").read_text()
    summary = json.loads((reports / "summary.json").read_text())
    assert summary["datasets"] == ["demo"] and summary["seeds"] == [0, 1] and summary["devices"] == ["cpu"]
    # CoMVC on 2 seeds: the baselines claim is undecided for too few seeds, and the landing page says so
    assert summary["claims"] == {"holding": 0, "failing": 0, "inconclusive": 1, "not informative": 0}
    assert "verdicts: 0 holding, 0 failing, 1 inconclusive, 0 not informative" in landing
    assert "href='demo/index.html'" in landing and "machine Some CPU 9000" in landing and "Some CPU 9000" in index
    assert "<b>Undecided</b> (1): 1 for <b>too few seeds</b>" in landing
    assert "href='demo/06_evaluate/evaluate.html#claims'" in landing


def test_the_report_writes_nothing_outside_its_folder_unless_given_the_landing_page(tmp_path):
    results, reports, config = make_results(tmp_path)
    (reports.parent / "index.html").write_text("a page of the site's own")

    def outside():
        return {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and reports not in p.parents}

    before = outside()
    report.write_index(results, reports, [str(config)])
    assert outside() == before and (reports / "index.html").is_file()
    with pytest.raises(ValueError, match="folder above"):
        report.write_index(results, reports, [str(config)], landing=tmp_path / "index.html")
    assert outside() == before


def test_training_pages_are_grouped_by_the_registry_family_in_table_order(tmp_path):
    """One training folder for every model; the index splits it into baselines, the paper's defenses and
    related systems, whatever order the files come in."""
    stage = tmp_path / "02_train"
    stage.mkdir()
    names = ["demo-alrdc-seed0", "demo-ardmvc-am-seed0", "demo-comvc-seed1", "demo-comvc-seed0", "demo-ardmvc-seed0",
             "demo-eamc-seed0", "demo-retired-seed0"]
    for name in names:
        (stage / f"{name}.html").write_text("<html></html>")
    links = report.report_links(tmp_path)
    heads = re.findall(r"<h4>(.*?)</h4>", links)
    assert heads == ["baselines", "defenses", "related systems", "other"]
    order = re.findall(r"href='02_train/(.*?)\.html'", links)
    assert order == ["demo-eamc-seed0", "demo-comvc-seed0", "demo-comvc-seed1", "demo-ardmvc-seed0",
                     "demo-ardmvc-am-seed0", "demo-alrdc-seed0", "demo-retired-seed0"]
    sections = links.split("<h4>")
    assert "ardmvc-am" in sections[2] and "alrdc" not in sections[2] and "alrdc" in sections[3]


def test_no_page_or_shipped_file_names_the_results_folder_by_its_absolute_path(tmp_path):
    results, reports, config = make_results(tmp_path)
    # an old run's record and an old page that name the results folder absolutely (as runs before lineage did)
    old = results / "metrics" / "demo" / "comvc" / "gan-both" / "paper" / "seed0.json"
    old.write_text(json.dumps({**json.loads(old.read_text()), "data": f"{results.resolve()}/data/d\u00e9mo.npz"}))
    page = reports / "03_attack" / "demo-comvc-gan-both-paper-seed0.html"
    page.write_text(page.read_text().replace("</body>", f"<pre>wrote {results.resolve()}/data/demo.npz</pre></body>"))
    report.write_index(results, reports, [str(config)], landing=reports.parent / "index.html")
    roots = {str(tmp_path.resolve()), str(tmp_path.absolute())}
    for f in [*reports.rglob("*"), reports.parent / "index.html"]:
        if f.is_file() and f.suffix in (".html", ".json", ".csv", ".yaml"):
            text = f.read_text()
            assert not any(r in text for r in roots), f"{f} names {tmp_path}"
    shipped = json.loads((reports / "data" / old.relative_to(results)).read_text())
    assert shipped["data"] == "results/data/d\u00e9mo.npz"  # the folder's name: it lies outside the working folder
    assert "wrote results/data/demo.npz" in page.read_text()
    # the same function cleans a folder built before the report step did
    assert report.unroot_folder(reports, [results]) == 0


def test_the_committed_reports_link_only_files_they_hold_and_name_no_absolute_path():
    """What a reader of the repository opens: reports/index.html and each scale under it."""
    assert (ROOT / "reports" / "index.html").is_file(), "reports/index.html is missing; the report rule writes it"
    broken, paths = report_defects(ROOT / "reports")
    assert not broken, f"{len(broken)} broken links, e.g. {broken[:3]}"
    assert not paths, f"{len(paths)} absolute paths, e.g. {paths[:3]}"
    landing = (ROOT / "reports" / "index.html").read_text()
    assert "verdicts:" in landing and "class='bottom-line'" in landing


def test_a_scale_made_by_other_claims_rules_keeps_its_own_verdicts_on_the_landing_page(tmp_path):
    results, reports, config = make_results(tmp_path)
    card = json.loads((results / "metrics" / "scorecard.json").read_text())
    card["claims"][0]["verdict"] = "holds"  # as an earlier rule might have said
    (results / "metrics" / "scorecard.json").write_text(json.dumps(card))
    report.write_index(results, reports, [str(config)], landing=reports.parent / "index.html")
    landing = (reports.parent / "index.html").read_text()
    assert "made by another version of the claims" in landing and "<b>Holds</b> (1)" in landing
