"""The import graph of fsctl and fs_scripts has no cycle (the layers themselves are setup.cfg's
import-linter contracts, checked by `make lint`)."""

import grimp


def import_cycles(graph) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []
    counter = 0
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
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
                        cycles.append(sorted(component))
    return cycles


def test_no_import_cycle():
    assert import_cycles(grimp.build_graph("fsctl", "fs_scripts", cache_dir=None)) == []


def test_a_cycle_is_found():
    graph = grimp.ImportGraph()
    for name in ("a", "a.x", "a.y", "a.z"):
        graph.add_module(name)
    graph.add_import(importer="a.x", imported="a.y")
    graph.add_import(importer="a.y", imported="a.x")
    graph.add_import(importer="a.z", imported="a.x")
    assert import_cycles(graph) == [["a.x", "a.y"]]


def test_a_long_module_says_why_at_its_top():
    """A module over 600 lines is several modules, unless its docstring says why it is one."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    long = {}
    for path in sorted([*(root / "fsctl").rglob("*.py"), *(root / "fs_scripts").rglob("*.py")]):
        text = path.read_text()
        if text.count("\n") > 600:
            long[str(path.relative_to(root))] = "Why one module" in (ast.get_docstring(ast.parse(text)) or "")
    assert all(long.values()), long
