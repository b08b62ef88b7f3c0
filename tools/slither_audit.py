"""`make audit`: Slither on `contracts/`, with the project's own compiler set-up, and a verdict.

Slither runs on the solc-js wrapper (`tools/solc-wrapper.js`, which answers like native solc) in standard-JSON
mode, over the project's contracts only (OpenZeppelin and the test mocks are filtered out). Its JSON report is
written to `out/slither.json`.

The audit fails when:
- a High or Medium result remains: each one must be fixed, or carry an inline suppression
  (`// slither-disable-next-line <detector> -- <reason>`) on the line before the flagged code;
- a suppression gives no reason (at least a few words after ` -- `), so nothing is silenced unexplained.

Slither itself drops the results a suppression covers; this script prints what remains by impact, and every
suppression with its reason, so a reviewer reads the exceptions in one place.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BLOCKING = ("High", "Medium")
IMPACT_ORDER = ("High", "Medium", "Low", "Informational", "Optimization")
# Slither's own pattern for a suppression (slither/core/slither_core.py), plus our required reason.
SUPPRESSION = re.compile(r"//\s*slither-disable-(?:next-line|start|end)\s*([a-zA-Z0-9_,-]*)(.*)$")
REASON = re.compile(r"^\s+--\s+(\S.{8,})$")


@dataclass(frozen=True)
class Suppression:
    """One inline `slither-disable` comment."""

    path: str
    line: int
    detectors: str
    reason: str | None


def suppressions(contracts: Path) -> list[Suppression]:
    """Every `slither-disable-*` comment under `contracts`, with its reason when it gives one."""
    found = []
    for path in sorted(contracts.rglob("*.sol")):
        if any(part.startswith(".") for part in path.relative_to(contracts).parts):
            continue  # the compiler's caches (Ape copies dependencies under contracts/.cache)
        for number, text in enumerate(path.read_text().splitlines(), start=1):
            match = SUPPRESSION.search(text)
            if match is None or "slither-disable-end" in text:
                continue
            reason = REASON.match(match.group(2))
            found.append(
                Suppression(
                    str(path.relative_to(contracts.parent)),
                    number,
                    match.group(1),
                    reason.group(1).strip() if reason else None,
                )
            )
    return found


def run_slither(out: Path) -> dict[str, Any]:
    """Runs Slither on the project's contracts and returns its JSON report (also written to `out`)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    command = [
        str(Path(sys.executable).with_name("slither")),
        "contracts",
        "--solc",
        str(ROOT / "tools" / "solc-wrapper.js"),
        "--solc-standard-json",
        "--solc-remaps",
        "@openzeppelin/contracts/=node_modules/@openzeppelin/contracts/",
        "--filter-paths",
        "node_modules|contracts/test/|contracts/\\.cache/",
        "--json",
        str(out),
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if not out.exists():
        sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
        raise SystemExit(f"error: Slither wrote no report (exit {done.returncode})")
    report: dict[str, Any] = json.loads(out.read_text())
    if not report.get("success"):
        raise SystemExit(f"error: Slither failed: {report.get('error')}")
    return report


def blocking_results(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The High and Medium results left after the inline suppressions."""
    detectors = report.get("results", {}).get("detectors", [])
    return [r for r in detectors if r.get("impact") in BLOCKING]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "slither.json")
    args = parser.parse_args()

    report = run_slither(args.out)
    detectors = report.get("results", {}).get("detectors", [])
    counts = Counter(r.get("impact", "?") for r in detectors)
    print("Slither results by impact: " + ", ".join(f"{k} {counts.get(k, 0)}" for k in IMPACT_ORDER))

    notes = suppressions(ROOT / "contracts")
    print(f"\n{len(notes)} inline suppression(s):")
    for s in notes:
        print(f"  {s.path}:{s.line}  {s.detectors}: {s.reason or '(NO REASON GIVEN)'}")

    failed = False
    unexplained = [s for s in notes if s.reason is None]
    if unexplained:
        failed = True
        print(f"\nerror: {len(unexplained)} suppression(s) without a reason (`-- <why>` after the detector)")
    blocking = blocking_results(report)
    if blocking:
        failed = True
        print(f"\nerror: {len(blocking)} unexplained High/Medium result(s):")
        for r in blocking:
            first = r.get("description", "").strip().splitlines()[0]
            print(f"  [{r['impact']}] {r['check']}: {first}")
    print(f"\nreport: {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    if not failed:
        print("audit passed: 0 unexplained High/Medium results")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
