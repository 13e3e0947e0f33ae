"""Draw the import picture of Segue's `engine` and `bridge` from their source.

    python scripts/import_graph.py            print the picture (Mermaid) and its figures
    python scripts/import_graph.py --write    put it into docs/development.md
    python scripts/import_graph.py --check    exit 1 when docs/development.md is not current

Every `import` of an `engine` or `bridge` module counts, at the top of a file or inside a
function (a deferred import is still a dependency). The house has rooms: each sub-package
(`engine/abc/`, `bridge/cli/`, ...) is one. The modules at a package's top level
(`engine/errors.py`, ...) are its ground, which every room may stand on and which stands on no
room. The picture has one node per room, listing its modules, and one arrow per importing room
and imported room; a table under it says what each room is for (the first line of its
`__init__` docstring). The figures: modules, imports, cycles, and floors (the longest chain of
rooms; the ground is floor 0).
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
    """`engine/abc/writer.py` -> `engine.abc.writer`; `bridge/cli/__init__.py` -> `bridge.cli`."""
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


ENTRY_POINTS = {"bridge.__main__"}  # `python -m bridge`: the ground's one way up, into the CLI


def room_of(module: str) -> str:
    """The room a module is in: `engine.abc.text` -> `engine.abc`; `engine.errors` -> `engine`
    (the ground); a room's own `__init__` (`bridge.cli`) is in that room."""
    if (ROOT / module.replace(".", "/")).is_dir():
        return module
    return module.rpartition(".")[0] or module


def is_ground(room: str) -> bool:
    return room in PACKAGES


def rooms(edges: Graph) -> Graph:
    """Each room and the rooms its modules import (entry points aside)."""
    found: Graph = {}
    for source, targets in edges.items():
        room = room_of(source)
        if source in ENTRY_POINTS:
            targets = set()
        found.setdefault(room, set()).update(room_of(t) for t in targets if room_of(t) != room)
    return found


def ground_climbing(edges: Graph) -> list[str]:
    """Imports from a ground module up into a room (entry points aside): each breaks the rule."""
    return sorted(f"{source} -> {target}" for source, targets in edges.items()
                  for target in targets if source not in ENTRY_POINTS
                  and is_ground(room_of(source)) and not is_ground(room_of(target)))


def room_floors(edges: Graph) -> dict[str, int]:
    """Each room's floor: the longest chain of rooms under it, itself included; the ground is 0."""
    upper = {room: {t for t in targets if not is_ground(t)}
             for room, targets in rooms(edges).items() if not is_ground(room)}
    return floors(upper)


def purpose(room: str) -> str:
    """What a room is for: the first line of its `__init__` docstring."""
    init = ROOT / room.replace(".", "/") / "__init__.py"
    doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
    return doc.splitlines()[0] if doc else ""


def room_modules(edges: Graph) -> dict[str, list[str]]:
    """Each room's modules by their last name; a room's `__init__` is the room, not a module."""
    found: dict[str, list[str]] = {}
    for module in sorted(edges):
        if module != room_of(module) or is_ground(module):
            found.setdefault(room_of(module), []).append(module.rpartition(".")[2])
    return found


def node_id(name: str) -> str:
    return name.replace(".", "_")


def mermaid(edges: Graph) -> str:
    """The picture: one node per room, listing its modules; an arrow from each importing room to
    each room it imports."""
    lines = ["flowchart TD"]
    for room, names in sorted(room_modules(edges).items()):
        label = f"{room} (ground)" if is_ground(room) else room
        lines.append(f'  {node_id(room)}["<b>{label}</b><br/>{", ".join(names)}"]')
    for source, targets in sorted(rooms(edges).items()):
        lines += [f"  {node_id(source)} --> {node_id(target)}" for target in sorted(targets)]
    return "\n".join(lines)


def room_table(edges: Graph) -> str:
    """Floor, modules and purpose of each room, top floor first."""
    heights = room_floors(edges)
    modules = room_modules(edges)
    rows = ["| room | floor | modules | what it is for |", "|---|---:|---:|---|"]
    for room in sorted(modules, key=lambda r: (-heights.get(r, 0), r)):
        rows.append(f"| `{room}` | {heights.get(room, 0)} | {len(modules[room])} | "
                    f"{purpose(room)} |")
    return "\n".join(rows)


def figures(edges: Graph) -> str:
    """One line of figures under the picture."""
    heights = room_floors(edges)
    tallest = max(heights, key=lambda name: (heights[name], name))
    loops = cycles(edges)
    loop_text = "; ".join(" <-> ".join(group) for group in loops) or "none"
    crossing = sorted(f"{s} -> {t}" for s, targets in edges.items() for t in targets
                      if s.startswith("engine") and t.startswith("bridge"))
    return (f"{len(edges)} modules in {len(rooms(edges))} rooms, "
            f"{sum(len(t) for t in edges.values())} imports between them; "
            f"engine imports bridge: {', '.join(crossing) or 'never'}; "
            f"the ground imports a room: {', '.join(ground_climbing(edges)) or 'never'}; "
            f"cycles: {loop_text}; floors: {heights[tallest]} (the top: {tallest}).")


def picture(edges: Graph) -> str:
    """The block that docs/development.md holds, markers included."""
    return (f"{BEGIN}\n```mermaid\n{mermaid(edges)}\n```\n\n{room_table(edges)}\n\n"
            f"{figures(edges)}\n{END}")


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
