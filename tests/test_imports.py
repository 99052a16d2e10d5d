"""The package's imports run one way: the graph of every import in src/robustmvc, at module level and
inside functions alike, has no cycle; and what the Snakefile imports loads no torch.

A module importing `robustmvc.a.b` from outside the package `robustmvc.a` also runs `robustmvc/a/__init__.py`,
so it depends on that file too; a module inside `robustmvc.a` does not (the package is already loading).
"""
import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PACKAGE = "robustmvc"


def module_names() -> dict[str, Path]:
    names = {}
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def imported(node: ast.AST, importer: str, is_package: bool, known: set[str]) -> set[str]:
    """The package's modules that one import statement names."""
    if isinstance(node, ast.Import):
        targets = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            anchor = importer.split(".")[: len(importer.split(".")) - node.level + is_package]
            base = ".".join(anchor + ([base] if base else []))
        targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
    found = set()
    for target in targets:
        while target and target not in known:  # `import robustmvc.a.b.C`-style names: the module holding them
            target = target.rpartition(".")[0]
        if not target.startswith(PACKAGE):
            continue
        found.add(target)
        parts = target.split(".")
        for i in range(2, len(parts)):
            parent = ".".join(parts[:i])
            if not (importer == parent or importer.startswith(parent + ".")):
                found.add(parent)
    found.discard(importer)
    return found


def import_graph() -> dict[str, set[str]]:
    names = module_names()
    graph = {}
    for name, path in names.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        is_package = path.name == "__init__.py"
        graph[name] = set().union(*(imported(node, name, is_package, set(names)) for node in ast.walk(tree)
                                    if isinstance(node, (ast.Import, ast.ImportFrom))))
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node):
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = 2
        path.pop()
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_cycle_finder_finds_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set()}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_graph_sees_function_level_and_package_imports():
    graph = import_graph()
    assert "robustmvc.cli" in graph and len(graph) > 30
    # cli imports the package inside its commands (start-up time); those edges are in the graph
    assert "robustmvc.config" in graph["robustmvc.cli"]
    # the registry imports the models on first build, inside a function
    assert "robustmvc.defenses.alrdc" in graph["robustmvc.registry"]
    # a defense imports `robustmvc.attacks.pgd` from outside that package, so it also runs its __init__ ...
    assert {"robustmvc.attacks", "robustmvc.attacks.pgd"} <= graph["robustmvc.defenses.adversarial"]
    # ... while a module inside `robustmvc.models` does not depend on `robustmvc/models/__init__.py`
    assert graph["robustmvc.models.comvc"] == {"robustmvc.models.blocks", "robustmvc.models.losses"}


# data -> models -> attacks -> defenses -> runs -> tables/plots -> report -> cli (ARCHITECTURE.md,
# "Which way imports run"): the floor of each module, by the longest prefix of its name
FLOORS = {
    "robustmvc": 0, "robustmvc.files": 0, "robustmvc.progress": 0, "robustmvc.metrics": 0, "robustmvc.device": 0,
    "robustmvc.loop": 0, "robustmvc.data": 0, "robustmvc.lineage": 0, "robustmvc.schema": 0, "robustmvc.results": 0,
    "robustmvc.attack_settings": 0,
    "robustmvc.models": 1, "robustmvc.protocols": 1,
    "robustmvc.attacks": 2,
    "robustmvc.defenses": 3,
    "robustmvc.registry": 4, "robustmvc.config": 4, "robustmvc.detect": 4,
    "robustmvc.train": 4, "robustmvc.runs": 4, "robustmvc.stack": 4, "robustmvc.lease": 4,
    "robustmvc.tables": 5, "robustmvc.plots": 5, "robustmvc.pages": 5, "robustmvc.claims": 5,
    "robustmvc.report": 6,
    "robustmvc.cli": 7, "robustmvc.__main__": 7,
}
# the one upward import left: an attack job asked for a figure of its examples draws it with the
# plotting module (imported inside that branch only)
UPWARD = {("robustmvc.runs", "robustmvc.plots")}


def floor(module: str) -> int:
    parts = module.split(".")
    return next(FLOORS[".".join(parts[:i])] for i in range(len(parts), 0, -1) if ".".join(parts[:i]) in FLOORS)


def test_imports_never_reach_a_higher_floor():
    graph = import_graph()
    upward = sorted((a, b) for a, targets in graph.items() for b in targets if floor(b) > floor(a))
    assert set(upward) == UPWARD, "imports that climb a floor: " + ", ".join(f"{a} -> {b}" for a, b in upward)


def test_imports_have_no_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_snakefile_resolves_and_hashes_settings_without_torch():
    """Snakemake starts for every dry run, every run and every cluster job, and reads the package through the
    imports of the Snakefile and its rules; torch would add ~3.5 s of CPU to each start on a 2-core AMD EPYC.
    Those imports, a demo config validated, an attack job's settings resolved and hashed: torch stays out."""
    lines = [line.strip() for f in [ROOT / "Snakefile", *sorted((ROOT / "rules").glob("*.smk"))]
             for line in f.read_text().splitlines() if line.strip().startswith(("from robustmvc", "import robustmvc"))]
    assert len(lines) >= 3, lines
    script = "\n".join(lines + [
        "import sys, yaml",
        "from robustmvc import config, lineage",
        "cfg = yaml.safe_load(open('config/demo.yaml'))",
        "config.validate(cfg)",
        "job = config.attack_job(cfg, 'gan', 'demo', protocol='strict', seed=0)",
        "lineage.attack_hash(job), lineage.train_hash('comvc', config.train_job(cfg, 'comvc', 'demo'), 0)",
        "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))[:3])",
    ])
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip() == "[]", run.stdout
