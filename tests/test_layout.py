"""The house's layout holds: no import circles, and the plain-Python parts stand without Django.

The import graph is read from the source (ast), module-level and function-level imports alike:
an import inside a function is still a dependency, only a later one.
"""
import ast
import json
import subprocess
import sys
import weakref
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("checklist", "checks", "deploychecks", "migration", "mingus_deploy")
# The engine's Django glue: the app config, the job kinds, the management commands.
ENGINE_GLUE = ("migration.apps", "migration.jobs", "migration.management")


def project_modules():
    """dotted name -> path of every project module (Django's migrations/ left out: history)."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if "migrations" in parts:
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def _absolute(module, path, node):
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    if path.name != "__init__.py":
        base = base[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def import_graph(modules):
    """module -> the project modules it imports (anywhere in its body)."""
    graph = {}
    for module, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _absolute(module, path, node)
                # `from pkg import name` imports pkg.name when that is a module.
                names = [base] + [f"{base}.{alias.name}" for alias in node.names]
            else:
                continue
            for name in names:
                while name and name not in modules:
                    name = name.rpartition(".")[0]
                if name and name != module:
                    targets.add(name)
        graph[module] = targets
    return graph


def cycles(graph):
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]


def test_no_module_imports_one_that_imports_it_back():
    graph = import_graph(project_modules())
    assert len(graph) > 100  # the walk found the project
    found = cycles(graph)
    detail = [{m: sorted(t for t in graph[m] if t in c) for m in c} for c in found]
    assert not found, json.dumps(detail, indent=1)


def test_the_engine_and_the_checks_know_nothing_of_the_app():
    graph = import_graph(project_modules())
    app = ("checklist", "deploychecks", "mingus_deploy")
    plain = [m for m in graph if m.split(".")[0] in ("checks", "migration")
             and not m.startswith(ENGINE_GLUE)]
    wrong = {m: sorted(t for t in graph[m] if t.split(".")[0] in app) for m in plain}
    assert not {m: t for m, t in wrong.items() if t}


BLOCK_DJANGO = """
import importlib.abc, sys

class NoDjango(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("django", "celery"):
            raise ImportError(f"{name} is not importable here")
        return None

sys.meta_path.insert(0, NoDjango())
import importlib
for name in sys.argv[1:]:
    importlib.import_module(name)
try:
    import django  # noqa: F401
except ImportError:
    print("imported", len(sys.argv) - 1, "modules without django")
else:
    raise SystemExit("django was importable: the blocker did not hold")
"""


def test_the_checks_library_and_the_engine_import_without_django():
    names = [m for m in project_modules() if m.split(".")[0] in ("checks", "migration")
             and not m.startswith(ENGINE_GLUE)]
    assert "checks.registry" in names and "migration.steps" in names
    done = subprocess.run([sys.executable, "-c", BLOCK_DJANGO, *names], cwd=ROOT,
                          capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"imported {len(names)} modules without django" in done.stdout


def _calls(tree):
    """(dotted name, line) of every call in a module: `importlib.import_module(...)` gives
    'importlib.import_module', a bare `import_module(...)` 'import_module'."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func, parts = node.func, []
            while isinstance(func, ast.Attribute):
                parts.append(func.attr)
                func = func.value
            if isinstance(func, ast.Name):
                parts.append(func.id)
            yield ".".join(reversed(parts)), node.lineno


def test_no_module_loads_code_by_a_dotted_string():
    """Job kinds, run-end steps, announcement hooks and the engine's worker tasks are handed
    over as functions (registered or in a table), never looked up by name at run time."""
    loaders = ("import_module", "importlib.import_module", "__import__", "import_string")
    found = [f"{path.relative_to(ROOT)}:{line} {name}"
             for path in project_modules().values()
             for name, line in _calls(ast.parse(path.read_text(encoding="utf-8")))
             if name in loaders]
    assert not found, found


MODEL_SIGNALS = ("pre_init", "post_init", "pre_save", "post_save", "pre_delete", "post_delete",
                 "m2m_changed")


def test_nothing_in_the_project_listens_to_model_saves():
    """What follows a write is called by the action that writes (no save-signal chains): no
    project module names a model signal, and none is connected once the apps are ready (the
    libraries' own receivers, such as django-axes', are theirs)."""
    from django.db.models import signals

    named = [f"{path.relative_to(ROOT)}:{node.lineno} {node.id if isinstance(node, ast.Name) else node.attr}"
             for path in project_modules().values()
             for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
             if (isinstance(node, ast.Name) and node.id in MODEL_SIGNALS)
             or (isinstance(node, ast.Attribute) and node.attr in MODEL_SIGNALS)]
    assert not named, named
    connected = []
    for name in MODEL_SIGNALS:
        for entry in getattr(signals, name).receivers:  # (key, receiver or weakref[, ...])
            ref = entry[1]
            receiver = ref() if isinstance(ref, weakref.ReferenceType) else ref
            module = getattr(receiver, "__module__", "") or ""
            if module.split(".")[0] in PACKAGES:
                connected.append(f"{name}: {module}.{getattr(receiver, '__qualname__', receiver)}")
    assert not connected, connected
    assert signals.post_save.receivers  # the walk saw the libraries' receivers: it can see
