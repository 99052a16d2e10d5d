"""A run's results as a portable archive (robustmvc.results): what it carries and leaves behind, a round trip,
an idempotent merge, a conflicting run refused whole (the DAG planning only what a merged folder lacks is
tested on the demo run, in tests/test_demo_dag.py)."""
import json
import tarfile
from pathlib import Path

import pytest

from robustmvc import lineage, results
from robustmvc.cli import main

RUN = "metrics/demo/comvc/clean/seed0.json"
ATTACK = "metrics/demo/comvc/gan-both/paper/seed0.json"


def record(settings, machine="cpu A"):
    return {"clean": {"acc": 0.8}, "history": [{"epoch": 1, "loss": 1.0}],
            "lineage": {"settings": settings, "checkpoint": "c0ffee"},
            "provenance": {"machine": machine, "commit": "abc1234"}}


def finished_run(root: Path, settings="s1", machine="cpu A"):
    """A results and a report folder as a run leaves them: results, pages with linked images, and the
    rebuildable files (data, checkpoint, attacker, executed notebook) the archive must leave behind."""
    res, rep = root / "results", root / "reports" / "demo"
    files = {
        res / RUN: json.dumps(record(settings, machine)),
        res / ATTACK: json.dumps(record("a1", machine)),
        res / "transfer/demo.csv": "source,target,post_acc\ncomvc,simvc,0.5\n",
        res / "attacks/demo/comvc/gan-both/paper/seed0.png": "png",
        res / "benchmarks/02_train/demo-comvc-seed0.tsv": "s\n1.0\n",
        res / "data/demo.npz": "npz", res / "models/demo/comvc/seed0.pt": "pt",
        res / "attacks/demo/comvc/gan-both/paper/seed0.pt": "pt",
        res / "notebooks/02_train/demo-comvc-seed0.ipynb": "{}",
        res / "metrics/all.csv": "table", res / "metrics/scorecard.json": "{}",
        rep / "02_train/demo-comvc-seed0.html": '<img src="../img/ab12.webp"><link href="../style-1.css">',
        rep / "img/ab12.webp": "webp", rep / "img/unlinked.webp": "webp", rep / "style-1.css": "css",
        rep / "06_evaluate/evaluate.html": "aggregate", rep / "index.html": "index",
    }
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return res, rep


def names(archive):
    with tarfile.open(archive) as tar:
        return sorted(tar.getnames())


def test_export_carries_what_the_reports_read_and_nothing_rebuildable(tmp_path):
    res, rep = finished_run(tmp_path / "a")
    made = results.export(res, rep, tmp_path / "run.tar.gz")
    assert names(tmp_path / "run.tar.gz") == sorted([
        "reports/02_train/demo-comvc-seed0.html", "reports/img/ab12.webp", "reports/style-1.css",
        f"results/{ATTACK}", f"results/{RUN}", "results/attacks/demo/comvc/gan-both/paper/seed0.png",
        "results/benchmarks/02_train/demo-comvc-seed0.tsv", "results/transfer/demo.csv"])
    assert made == {"files": 8, "bytes": (tmp_path / "run.tar.gz").stat().st_size}


def test_archive_holds_no_path_of_the_machine(tmp_path):
    res, rep = finished_run(tmp_path / "a")
    results.export(res, rep, tmp_path / "run.tar.gz")
    with tarfile.open(tmp_path / "run.tar.gz") as tar:
        for member in tar.getmembers():
            assert not member.name.startswith("/") and ".." not in Path(member.name).parts
            assert str(tmp_path) not in tar.extractfile(member).read().decode()
            assert member.uname == "" and member.uid == 0


def test_round_trip_and_idempotent_merge(tmp_path):
    res, rep = finished_run(tmp_path / "a")
    results.export(res, rep, tmp_path / "run.tar.gz")
    res2, rep2 = tmp_path / "b" / "results", tmp_path / "b" / "reports" / "demo"
    assert results.merge(tmp_path / "run.tar.gz", res2, rep2) == {"added": 8, "kept": 0}
    for name in names(tmp_path / "run.tar.gz"):
        top, rel = name.split("/", 1)
        here, there = (res, res2) if top == "results" else (rep, rep2)
        assert (there / rel).read_bytes() == (here / rel).read_bytes(), name
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in (tmp_path / "b").rglob("*") if p.is_file()}
    assert results.merge(tmp_path / "run.tar.gz", res2, rep2) == {"added": 0, "kept": 8}
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in (tmp_path / "b").rglob("*") if p.is_file()} == before


def test_a_run_with_other_settings_is_refused_whole_in_one_sentence(tmp_path, capsys):
    res, rep = finished_run(tmp_path / "a", settings="s1", machine="cpu A")
    other_res, other_rep = finished_run(tmp_path / "b", settings="s2", machine="gpu B")
    (other_res / "metrics/demo/simvc/clean").mkdir(parents=True)
    (other_res / "metrics/demo/simvc/clean/seed0.json").write_text(json.dumps(record("s3")))
    results.export(other_res, other_rep, tmp_path / "other.tar.gz")
    with pytest.raises(ValueError) as refused:
        results.merge(tmp_path / "other.tar.gz", res, rep)
    sentence = str(refused.value)
    assert RUN in sentence and "s1" in sentence and "s2" in sentence and "gpu B" in sentence and "cpu A" in sentence
    assert sentence.count(". ") == 0 and "\n" not in sentence
    assert not (res / "metrics/demo/simvc").exists()  # nothing of the archive was written
    assert main(["results", "merge", str(tmp_path / "other.tar.gz"), "--results", str(res), "--reports", str(rep)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1 and "s2" in err


def test_an_archive_with_a_path_outside_its_folders_is_refused(tmp_path):
    bad = tmp_path / "bad.tar.gz"
    (tmp_path / "x").write_text("x")
    with tarfile.open(bad, "w:gz") as tar:
        tar.add(tmp_path / "x", arcname="results/../../escape")
    with pytest.raises(ValueError, match="not a file under results/ or reports/"):
        results.merge(bad, tmp_path / "r", tmp_path / "p")
    assert not (tmp_path / "escape").exists()


def test_kept_needs_matching_settings_its_outputs_and_its_checkpoint_gone_or_recorded(tmp_path):
    res, rep = finished_run(tmp_path / "a")
    metrics, checkpoint, page = res / RUN, res / "models/demo/comvc/seed0.pt", rep / "02_train/demo-comvc-seed0.html"
    brought = {res / RUN, res / ATTACK}
    assert not results.kept(metrics, "s1", checkpoint, [page], brought)  # another checkpoint than it records
    checkpoint.unlink()
    assert results.kept(metrics, "s1", checkpoint, [page], brought)
    assert not results.kept(metrics, "s1", checkpoint, [page])  # made here, not merged: rebuilt as before
    assert not results.kept(metrics, "s2", checkpoint, [page], brought)  # other settings now: rerun
    assert not results.kept(res / "metrics/demo/x.json", "s1", checkpoint, [], {res / "metrics/demo/x.json"})
    assert results.kept_attack(res / ATTACK, "a1", metrics, "s1", checkpoint, [], brought)
    assert not results.kept_attack(res / ATTACK, "a1", metrics, "s2", checkpoint, [], brought)  # model retrained
    page.unlink()
    assert not results.kept(metrics, "s1", checkpoint, [page], brought)  # a page the report reads is missing
    page.write_text("page")
    carried = res / "models/demo/comvc/seed1.pt"  # a shard carried the checkpoint the result records
    carried.write_text("the checkpoint's bytes")
    metrics.write_text(json.dumps({"lineage": {"settings": "s1", "checkpoint": lineage.file_hash(carried)}}))
    assert results.kept(metrics, "s1", carried, [page], brought)


def test_export_carries_the_listed_checkpoints_and_attackers(tmp_path):
    """`carry` (the workflow's `carry` rule writes the list): the listed files that are there, nothing else
    rebuildable; a list naming a path outside the results folder, or no list, is refused with its fix."""
    res, rep = finished_run(tmp_path / "a")
    listed = tmp_path / "carry.txt"
    listed.write_text("models/demo/comvc/seed0.pt\nattacks/demo/comvc/gan-both/paper/seed0.pt\nmodels/demo/gone.pt\n")
    results.export(res, rep, tmp_path / "run.tar.gz", carry=listed)
    rebuildable = [n for n in names(tmp_path / "run.tar.gz") if n.endswith((".pt", ".npz", ".ipynb"))]
    assert rebuildable == ["results/attacks/demo/comvc/gan-both/paper/seed0.pt", "results/models/demo/comvc/seed0.pt"]
    listed.write_text("../elsewhere/seed0.pt\n")
    with pytest.raises(ValueError, match="not a path inside"):
        results.export(res, rep, tmp_path / "bad.tar.gz", carry=listed)
    with pytest.raises(ValueError, match="`carry` rule"):
        results.export(res, rep, tmp_path / "bad.tar.gz", carry=tmp_path / "absent.txt")
    assert not (tmp_path / "bad.tar.gz").exists()


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def trained(root: Path, checkpoint: str, attacks=("gan-both",)):
    """A results and report folder with the training of comvc seed 0 (made from `checkpoint`) and `attacks` of it."""
    res, rep = root / "results", root / "reports"
    write(res / RUN, json.dumps({"lineage": {"settings": "s1", "checkpoint": checkpoint}}))
    write(rep / "02_train/demo-comvc-seed0.html", f"training {checkpoint}")
    for variant in attacks:
        rel = ATTACK.replace("gan-both", variant)
        write(res / rel, json.dumps({"lineage": {"settings": variant, "checkpoint": checkpoint}}))
        write(rep / results.page_of(rel), f"{variant} of {checkpoint}")
    return res, rep


def test_a_training_made_again_replaces_one_that_no_result_was_made_from(tmp_path):
    """A shard stopped between a training and its attacks leaves a training no result was made from; the next
    machine trains it again and attacks it: its training takes the place of the first."""
    res, rep = trained(tmp_path / "here", "aaa", attacks=())
    made, made_rep = trained(tmp_path / "there", "bbb")
    results.export(made, made_rep, tmp_path / "shard.tar.gz")
    results.merge(tmp_path / "shard.tar.gz", res, rep)
    assert json.loads((res / RUN).read_text())["lineage"]["checkpoint"] == "bbb"
    assert (rep / "02_train/demo-comvc-seed0.html").read_text() == "training bbb"


def test_a_training_made_again_beside_results_of_the_first_stays_and_its_runs_are_refused(tmp_path):
    """The training here has an attack made from it: the archive's training of the same run does not replace it
    (nor its page), and an archive bringing an attack made from the archive's training is refused whole."""
    res, rep = trained(tmp_path / "here", "aaa")
    same, same_rep = trained(tmp_path / "there", "bbb")
    results.export(same, same_rep, tmp_path / "same.tar.gz")
    results.merge(tmp_path / "same.tar.gz", res, rep)
    assert json.loads((res / RUN).read_text())["lineage"]["checkpoint"] == "aaa"
    assert (rep / "02_train/demo-comvc-seed0.html").read_text() == "training aaa"
    assert (rep / results.page_of(ATTACK)).read_text() == "gan-both of aaa"
    more, more_rep = trained(tmp_path / "elsewhere", "bbb", attacks=("gan-both", "pgd"))
    results.export(more, more_rep, tmp_path / "more.tar.gz")
    before = sorted(p.read_bytes() for p in tmp_path.joinpath("here").rglob("*") if p.is_file())
    with pytest.raises(ValueError, match=r"pgd/paper/seed0.json, made from another training than the "
                                         r"metrics/demo/comvc/clean/seed0.json"):
        results.merge(tmp_path / "more.tar.gz", res, rep)
    assert sorted(p.read_bytes() for p in tmp_path.joinpath("here").rglob("*") if p.is_file()) == before


def test_page_names_follow_the_runs_metrics():
    assert results.page_of(RUN) == "02_train/demo-comvc-seed0.html"
    assert results.page_of("metrics/demo/ardmvc-am/gan-both-eps0.1/strict/seed3.json") == \
        "03_attack/demo-ardmvc-am-gan-both-eps0.1-strict-seed3.html"
    assert results.page_of("transfer/demo.csv") is None and results.page_of("metrics/all.csv") is None


def test_merge_lists_what_it_brought(tmp_path):
    res, rep = finished_run(tmp_path / "a")
    results.export(res, rep, tmp_path / "run.tar.gz")
    fresh = tmp_path / "b" / "results"
    results.merge(tmp_path / "run.tar.gz", fresh, tmp_path / "b" / "reports")
    assert results.merged(fresh) == {fresh / RUN, fresh / ATTACK, fresh / "transfer/demo.csv",
                                     fresh / "attacks/demo/comvc/gan-both/paper/seed0.png",
                                     fresh / "benchmarks/02_train/demo-comvc-seed0.tsv"}
    assert results.merged(res) == set()


def test_a_shard_exports_only_what_it_added(tmp_path):
    """`new_only`: what a merge brought is left out, unless something here rewrote it since."""
    res, rep = finished_run(tmp_path / "a")
    results.export(res, rep, tmp_path / "first.tar.gz")
    here = tmp_path / "b"
    res2, rep2 = here / "results", here / "reports" / "demo"
    results.merge(tmp_path / "first.tar.gz", res2, rep2)
    seed1 = res2 / RUN.replace("seed0", "seed1")
    seed1.write_text(json.dumps(record("s1")))
    (res2 / ATTACK).write_text(json.dumps(record("a1", machine="cpu B")))  # rerun here: its new record goes too
    results.export(res2, rep2, tmp_path / "shard.tar.gz", new_only=True)
    assert names(tmp_path / "shard.tar.gz") == sorted([f"results/{ATTACK}", f"results/{RUN.replace('seed0', 'seed1')}"])
    results.export(res2, rep2, tmp_path / "whole.tar.gz")
    assert len(names(tmp_path / "whole.tar.gz")) == len(names(tmp_path / "first.tar.gz")) + 1
    untouched = tmp_path / "c"
    results.merge(tmp_path / "first.tar.gz", untouched / "results", untouched / "reports")
    assert results.export(untouched / "results", untouched / "reports", tmp_path / "none.tar.gz", new_only=True) \
        == {"files": 0, "bytes": 0}
    assert not (tmp_path / "none.tar.gz").exists()


def test_a_merged_run_replaces_a_stale_page_of_it(tmp_path):
    """A page left by an earlier rendering of the report gives way to the merged run's; merging twice still
    changes nothing."""
    res, rep = finished_run(tmp_path / "a")
    results.export(res, rep, tmp_path / "run.tar.gz")
    res2, rep2 = tmp_path / "b" / "results", tmp_path / "b" / "reports"
    stale = rep2 / "02_train/demo-comvc-seed0.html"
    stale.parent.mkdir(parents=True)
    stale.write_text("an old rendering")
    results.merge(tmp_path / "run.tar.gz", res2, rep2)
    assert stale.read_text() == (rep / "02_train/demo-comvc-seed0.html").read_text()
    assert results.merge(tmp_path / "run.tar.gz", res2, rep2)["added"] == 0


def test_a_merge_leaves_out_the_trainings_to_make_again_and_what_was_made_from_them(tmp_path):
    res, rep = finished_run(tmp_path / "a")
    seed1 = res / RUN.replace("seed0", "seed1")
    seed1.write_text(json.dumps(record("s1")))
    results.export(res, rep, tmp_path / "run.tar.gz")
    listed = tmp_path / "make-again.txt"
    listed.write_text("# checkpoints not carried\ndemo/comvc/seed0   # its attack goes too\n\n")
    fresh, fresh_rep = tmp_path / "b" / "results", tmp_path / "b" / "reports"
    made = results.merge(tmp_path / "run.tar.gz", fresh, fresh_rep, leave_out=results.trainings_left_out(listed))
    assert {p.relative_to(fresh).as_posix() for p in results.merged(fresh)} == {
        RUN.replace("seed0", "seed1"), "transfer/demo.csv"}
    assert not (fresh_rep / "02_train/demo-comvc-seed0.html").exists()
    assert not (fresh / "attacks/demo/comvc/gan-both/paper/seed0.png").exists()
    assert not (fresh / "benchmarks/02_train/demo-comvc-seed0.tsv").exists() and made["added"] > 0
    listed.write_text("demo/comvc\n")
    with pytest.raises(ValueError, match=r"<dataset>/<model>/seed<s>"):
        results.trainings_left_out(listed)


def test_brought_files_are_the_results_and_pages_merges_brought(tmp_path):
    res, rep = finished_run(tmp_path / "a")
    results.export(res, rep, tmp_path / "run.tar.gz")
    fresh, fresh_rep = tmp_path / "b" / "results", tmp_path / "b" / "reports"
    results.merge(tmp_path / "run.tar.gz", fresh, fresh_rep)
    brought = results.brought_files(fresh, fresh_rep)
    assert set(brought) >= {fresh / RUN, fresh_rep / "02_train/demo-comvc-seed0.html"} and all(p.is_file() for p in brought)
    assert len(brought) == len(names(tmp_path / "run.tar.gz"))


def test_a_training_merged_without_its_checkpoint_is_made_again_only_when_nothing_was_made_from_it(tmp_path):
    """The readers of a checkpoint are the results of the jobs that take it as an input: all made, the training
    stays kept; none made, it is trained again; some made, the error names the line for the leave-out list."""
    weights, readers = tmp_path / "seed0.pt", [tmp_path / "paper.json", tmp_path / "strict.json"]
    assert results.train_again(weights, readers, "demo/comvc/seed0")
    readers[0].write_text("{}")
    with pytest.raises(ValueError, match="add the line demo/comvc/seed0 to the list") as err:
        results.train_again(weights, readers, "demo/comvc/seed0")
    assert str(readers[1]) in str(err.value) and "1 result(s) still to be made" in str(err.value)
    weights.write_bytes(b"carried")
    assert not results.train_again(weights, readers, "demo/comvc/seed0")
    weights.unlink()
    readers[1].write_text("{}")
    assert not results.train_again(weights, readers, "demo/comvc/seed0")
    assert not results.train_again(weights, [], "demo/comvc/seed0")
