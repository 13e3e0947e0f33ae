"""Draw the import picture of Segue's `engine` and `bridge` from their source.

    python scripts/import_graph.py            print the picture (Mermaid) and its figures
    python scripts/import_graph.py --write    put it into docs/development.md
    python scripts/import_graph.py --check    exit 1 when docs/development.md is not current

Every `import` of an `engine` or `bridge` module counts, at the top of a file or inside a
function (a deferred import is still a dependency). The picture has one node per module and
one arrow per importing module and imported module; modules are grouped by package. The
figures under it: modules, arrows, cycles, and floors (the longest chain of imports).
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("engine", "bridge")
DOC = ROOT / "docs" / "development.md"
BEGIN = "<!-- import picture: begin (python scripts/import_graph.py --write) -->"
END = "<!-- import picture: end -->"

Graph = dict[str, set[str]]


def module_name(path: Path) -> str:
    """`engine/abc_writer.py` -> `engine.abc_writer`; `bridge/cli/__init__.py` -> `bridge.cli`."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_files() -> dict[str, Path]:
    """Every module of the packages, by name (the `__main__` entry points included)."""
    return {module_name(path): path
            for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))}


def imported(node: ast.Import | ast.ImportFrom, importer: str, is_package: bool,
             modules: set[str]) -> set[str]:
    """The package modules an import statement names."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            anchor = importer.split(".")
            anchor = anchor[:len(anchor) - node.level + (1 if is_package else 0)]
            base = ".".join([*anchor, base] if base else anchor)
        names = [f"{base}.{alias.name}" for alias in node.names] + [base]
    found = set()
    for name in names:
        while name and name not in modules:  # `import engine.x.y` depends on engine.x
            name = name.rpartition(".")[0]
        if name and name != importer:
            found.add(name)
    return found


def graph() -> Graph:
    """Each module and the package modules it imports."""
    files = source_files()
    modules = set(files)
    edges: Graph = {}
    for name, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        targets: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                targets |= imported(node, name, path.name == "__init__.py", modules)
        # a package's __init__ is imported with any of its modules; it is not an arrow of its own
        edges[name] = {t for t in targets if not name.startswith(t + ".")}
    return edges


def cycles(edges: Graph) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return sorted(groups)


def floors(edges: Graph) -> dict[str, int]:
    """How many modules tall each module stands: 1 for one that imports none of the packages.

    Modules in a cycle count as one floor together, so the figure stays finite."""
    group_of = {member: tuple(group) for group in cycles(edges) for member in group}
    memo: dict[str, int] = {}

    def height(node: str, seen: frozenset[str]) -> int:
        if node not in memo:
            own = set(group_of.get(node, (node,)))
            below = [height(t, seen | own) for m in own for t in edges.get(m, ())
                     if t not in own and t not in seen]
            memo[node] = 1 + max(below, default=0)
        return memo[node]

    return {node: height(node, frozenset()) for node in sorted(edges)}


def node_id(name: str) -> str:
    return name.replace(".", "_")


def mermaid(edges: Graph) -> str:
    """The picture: modules grouped by package, an arrow from each importer to what it imports."""
    lines = ["flowchart TD"]
    by_package: dict[str, list[str]] = {}
    for name in sorted(edges):
        package = name if (ROOT / name.replace(".", "/")).is_dir() else name.rpartition(".")[0]
        by_package.setdefault(package or name, []).append(name)
    for package, members in sorted(by_package.items()):
        lines.append(f"  subgraph {node_id(package)}_pkg [{package}]")
        lines += [f"    {node_id(m)}[{m.rpartition('.')[2] if m != package else m}]"
                  for m in members]
        lines.append("  end")
    for source in sorted(edges):
        lines += [f"  {node_id(source)} --> {node_id(target)}" for target in sorted(edges[source])]
    return "\n".join(lines)


def figures(edges: Graph) -> str:
    """One line of figures under the picture."""
    heights = floors(edges)
    tallest = max(heights, key=lambda name: (heights[name], name))
    loops = cycles(edges)
    loop_text = "; ".join(" <-> ".join(group) for group in loops) or "none"
    crossing = sorted(f"{s} -> {t}" for s, targets in edges.items() for t in targets
                      if s.startswith("engine") and t.startswith("bridge"))
    return (f"{len(edges)} modules, {sum(len(t) for t in edges.values())} imports between them; "
            f"engine imports bridge: {', '.join(crossing) or 'never'}; cycles: {loop_text}; "
            f"floors: {heights[tallest]} (the tallest: {tallest}).")


def picture(edges: Graph) -> str:
    """The block that docs/development.md holds, markers included."""
    return f"{BEGIN}\n```mermaid\n{mermaid(edges)}\n```\n\n{figures(edges)}\n{END}"


def with_picture(text: str, block: str) -> str:
    """`text` with its picture block replaced by `block`."""
    start, end = text.index(BEGIN), text.index(END) + len(END)
    return text[:start] + block + text[end:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--write", action="store_true", help=f"update {DOC.relative_to(ROOT)}")
    action.add_argument("--check", action="store_true", help="exit 1 when the doc is not current")
    args = parser.parse_args(argv)
    block = picture(graph())
    if not (args.write or args.check):
        print(block)
        return 0
    text = DOC.read_text(encoding="utf-8")
    current = with_picture(text, block)
    if args.check:
        if current != text:
            print(f"{DOC.relative_to(ROOT)}: the import picture is out of date; run "
                  "python scripts/import_graph.py --write", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(current, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
