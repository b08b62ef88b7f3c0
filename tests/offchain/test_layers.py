"""The package's layers (docs/ARCHITECTURE.md): no module of `bme` imports from a layer above its own, and the
relayer, the node, the user client and the scenario runner never import one another.

Every import counts, at the top of a module or inside a function, type-only or not. A new top-level module
or package must be given a layer here.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

import bme

pytestmark = pytest.mark.pure

PACKAGE = Path(bme.__file__).parent

#: The layers, lowest first: a module may import from its own layer and those below.
LAYERS: tuple[frozenset[str], ...] = (
    # The package's errors and amounts for people: under everything.
    frozenset({"display", "errors"}),
    # Pure arithmetic and the rules the contracts apply (no I/O).
    frozenset({"economics"}),
    # Neutral: what any service may share (request commitment, job states and moves, the relayer-node
    # credential, the embedded model's file and chat template, the hot-path signatures, the backoff rule).
    frozenset({"commitment", "credential", "gguf", "job_states", "retry", "signatures"}),
    frozenset({"chain"}),
    frozenset({"node", "relayer", "scenario", "user", "wallet"}),
    # A local protocol as processes (anvil, the contracts, the relayer, nodes), for the demo and the tests.
    frozenset({"children", "devnet_ops", "stack", "stack_files", "stack_wallets"}),
    frozenset({"bench"}),
    frozenset({"cli"}),
)
LAYER = {name: level for level, names in enumerate(LAYERS) for name in names}

#: The services, which never import one another (the user client's wallets are part of it).
SERVICE = {"node": "node", "relayer": "relayer", "scenario": "scenario", "user": "user", "wallet": "user"}

#: Imports that break the rule today and that a move under way removes; each entry names the move. An entry
#: that no longer matches an import fails the test, so that the list empties as the moves land.
PENDING: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Import:
    importer: str  # dotted module name
    imported: str
    where: str  # path:line, for the report

    @property
    def key(self) -> tuple[str, str]:
        return (self.importer, self.imported)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> list[Import]:
    """The `bme` modules `path` imports (`from bme.x import y`: `bme.x.y` if it is a module, else `bme.x`)."""
    importer = module_name(path)
    package = importer if path.name == "__init__.py" else importer.rpartition(".")[0]
    found: list[Import] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        where = f"{path.relative_to(PACKAGE.parent)}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            found += [Import(importer, alias.name, where) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                source = f"{base}.{node.module}" if node.module else base
            else:
                source = node.module or ""
            for alias in node.names:
                candidate = f"{source}.{alias.name}"
                found.append(Import(importer, candidate if _is_module(candidate) else source, where))
    unique = dict.fromkeys(i for i in found if i.imported == "bme" or i.imported.startswith("bme."))
    return list(unique)


def _is_module(dotted: str) -> bool:
    path = PACKAGE.parent.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def top(module: str) -> str:
    """The top-level module or package of `bme` that `module` belongs to ('' for `bme` itself)."""
    return module.split(".")[1] if "." in module else ""


def all_imports() -> list[Import]:
    return [i for path in sorted(PACKAGE.rglob("*.py")) for i in imports_of(path)]


def problem(i: Import) -> str | None:
    """Why `i` breaks the layering, or None."""
    source, target = top(i.importer), top(i.imported)
    if "" in (source, target) or source == target:
        return None
    if LAYER[target] > LAYER[source]:
        return f"upward: {source} (layer {LAYER[source]}) imports {target} (layer {LAYER[target]})"
    if source in SERVICE and target in SERVICE and SERVICE[source] != SERVICE[target]:
        return f"sideways: {SERVICE[source]} imports {SERVICE[target]}, services never import one another"
    return None


def test_every_top_level_module_has_a_layer() -> None:
    names = {p.stem for p in PACKAGE.glob("*.py") if p.name != "__init__.py"}
    names |= {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    unplaced = sorted(names - set(LAYER))
    assert not unplaced, f"give these modules of bme a layer in LAYERS: {', '.join(unplaced)}"


def test_no_module_imports_from_a_higher_layer_or_another_service() -> None:
    imports = all_imports()
    offending = [
        f"{i.where}: {i.importer} -> {i.imported} ({why})"
        for i in imports
        if i.key not in PENDING and (why := problem(i)) is not None
    ]
    for line in offending:
        print(line)
    assert not offending, "imports that break the layering:\n" + "\n".join(offending)


def test_the_pending_imports_are_still_there_and_still_break_the_rule() -> None:
    present = {i.key: i for i in all_imports()}
    stale = [
        f"{importer} -> {imported}: {reason}"
        for (importer, imported), reason in PENDING.items()
        if (importer, imported) not in present or problem(present[(importer, imported)]) is None
    ]
    assert not stale, "remove from PENDING (the import is gone or allowed now):\n" + "\n".join(stale)


def test_only_the_command_line_imports_it() -> None:
    outside = [i for i in all_imports() if top(i.imported) == "cli" and top(i.importer) != "cli"]
    assert not outside, "\n".join(f"{i.where}: {i.importer} -> {i.imported}" for i in outside)


def test_the_import_reader_sees_each_form_of_import() -> None:
    """The checks above can fail: the reader finds absolute, relative, `from bme import x` and nested
    imports, and `problem` names an upward and a sideways one."""
    found = {i.imported for i in imports_of(PACKAGE / "cli" / "main.py")}
    assert {"bme.cli.ask", "bme.errors", "bme.cli.relayer", "bme.bench.gas"} <= found  # two inside functions
    user_imports = next(i for i in imports_of(PACKAGE / "user" / "wallets.py") if top(i.imported) == "wallet")
    assert problem(Import("bme.chain.client", "bme.cli.common", "x")) is not None
    assert problem(Import("bme.user.jobs", "bme.node.app", "x")) is not None
    assert problem(Import("bme.cli.main", "bme.user.jobs", "x")) is None
    assert problem(user_imports) is None  # a service's own wallets
    assert {i.imported for i in imports_of(PACKAGE / "cli" / "demo.py")} >= {"bme.devnet_ops"}
