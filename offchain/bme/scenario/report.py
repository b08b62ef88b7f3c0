"""Reports: the plots of a run (PNG) and an HTML page with them, its headline figures, the scenario and the
versions; for a sweep, comparison plots and a table of every run's headline figures.

Everything is rebuilt from a run's directory alone (`bme scenario report DIR`).
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bme.scenario.outputs import (
    RUN_FILE,
    RUNS_DIR,
    SCENARIO_FILE,
    SWEEP_FILE,
    TIMING_FILE,
    read_json,
    read_table,
)

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

PLOTS_DIR, REPORT_FILE = "plots", "report.html"
STATUS_COLOURS = {"Healthy": "#d8f0d8", "Warning": "#fbefc4", "HaltCR": "#f6cfcf", "HaltOracle": "#dcdcdc"}
DEFAULT_THRESHOLDS = {"cr_warn_bps": 9_500, "cr_halt_bps": 9_000, "cr_hysteresis_bps": 100}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Figure, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={"Software": None})
    _pyplot().close(fig)


# ---------------------------------------------------------------------------------------------- figures


def summarize(table: pd.DataFrame) -> dict[str, Any]:
    """A run's headline figures."""
    if table.empty:
        return {"epochs": 0}
    first = table.iloc[0]
    last = table.iloc[-1]
    start_supply = float(first["cmp_supply"] - first["supply_change"])
    cr = table["collateral_ratio"].dropna()
    status_counts = table["status"].value_counts()
    return {
        "epochs": len(table),
        "days": float(last["day"] + (table["day"].diff().dropna().iloc[0] if len(table) > 1 else 1.0)),
        "supply_start_cmp": start_supply,
        "supply_end_cmp": float(last["cmp_supply"]),
        "supply_change_pct": 100 * (float(last["cmp_supply"]) - start_supply) / start_supply
        if start_supply
        else 0.0,
        "burned_cmp": float(last["total_burned"]),
        "reissued_cmp": float(last["total_reissued"]),
        "new_issuance_cmp": float(last["total_new_issuance"]),
        "emission_cmp": float(last["total_emission"]),
        "net_burn_cmp": float(table["net_burn"].sum()),
        "min_collateral_ratio": float(cr.min()) if len(cr) else math.nan,
        "end_collateral_ratio": float(last["collateral_ratio"]),
        **{f"epochs_{name}": int(status_counts.get(name, 0)) for name in STATUS_COLOURS},
        "jobs_requested": int(table["jobs_requested"].sum()),
        "jobs_settled": int(table["jobs_settled"].sum()),
        "jobs_rejected": int(table["jobs_rejected"].sum()),
        "jobs_expired": int(table["jobs_expired"].sum()),
        "demand_usd": float(table["epoch_work"].sum()),
        "redeemed_usd": float(table["credits_redeemed"].sum()),
        "rewards_claimed_cmp": float(last["total_rewards_claimed"]),
    }


def _status_bands(ax: Axes, table: pd.DataFrame) -> None:
    """Shades each run of epochs by the status recorded at their end."""
    epochs, statuses = table["epoch"].tolist(), table["status"].tolist()
    start = 0
    for i in range(1, len(epochs) + 1):
        if i == len(epochs) or statuses[i] != statuses[start]:
            ax.axvspan(
                epochs[start] - 0.5,
                epochs[i - 1] + 0.5,
                color=STATUS_COLOURS.get(statuses[start], "white"),
                lw=0,
            )
            start = i


def plot_run(table: pd.DataFrame, thresholds: dict[str, int], out: Path) -> list[tuple[str, str]]:
    """Writes the run's plots to `out`; returns (file name, caption) pairs."""
    plt = _pyplot()
    out.mkdir(parents=True, exist_ok=True)
    x = table["epoch"]
    made: list[tuple[str, str]] = []

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    top.plot(x, table["cmp_supply"], color="#1f4e79")
    top.set_ylabel("CMP supply")
    top.set_title("Supply and net burn")
    colours = ["#2e7d32" if v >= 0 else "#c62828" for v in table["net_burn"]]
    bottom.bar(x, table["net_burn"], color=colours, width=1.0)
    bottom.plot(
        x, table["net_burn"].rolling(7, min_periods=1).mean(), color="black", lw=1, label="7-epoch mean"
    )
    bottom.axhline(0, color="grey", lw=0.5)
    bottom.set_ylabel("net burn (CMP / epoch)")
    bottom.set_xlabel("epoch")
    bottom.legend(loc="best", fontsize=8)
    _save(fig, out / "supply.png")
    made.append(
        ("supply.png", "CMP supply, and net burn per epoch (burned less minted: positive shrinks supply).")
    )

    fig, ax = plt.subplots(figsize=(9, 3.5))
    ax.plot(x, table["price_usd"], label="market price", color="#1f4e79")
    ax.step(x, table["oracle_price_usd"], where="post", label="oracle price", color="#ef6c00", lw=1)
    for epoch, pushed in zip(x, table["price_pushed"], strict=True):
        if not pushed:
            ax.axvspan(epoch - 0.5, epoch + 0.5, color="#dcdcdc", lw=0)
    ax.set_ylabel("USD per CMP")
    ax.set_xlabel("epoch")
    ax.set_title("Price (grey: oracle outage)")
    ax.legend(loc="best", fontsize=8)
    _save(fig, out / "price.png")
    made.append(("price.png", "The price path and the oracle's reading; grey epochs had no price pushed."))

    fig, ax = plt.subplots(figsize=(9, 3.5))
    _status_bands(ax, table)
    cr = table["collateral_ratio"]
    finite = cr.dropna()
    top_cr = max(1.5, float(finite.quantile(0.95)) * 1.1) if len(finite) else 1.5
    ax.plot(x, cr.clip(upper=top_cr), color="black", lw=1.2, label="collateral ratio")
    warn = thresholds["cr_warn_bps"] / 10_000
    halt = thresholds["cr_halt_bps"] / 10_000
    ax.axhline(warn, color="#b8860b", ls="--", lw=1, label=f"warn {warn:.2f}")
    ax.axhline(halt, color="#c62828", ls="--", lw=1, label=f"halt {halt:.2f}")
    ax.set_ylim(0, top_cr)
    ax.set_ylabel("collateral ratio")
    ax.set_xlabel("epoch")
    ax.set_title("Collateral ratio and status (green Healthy, yellow Warning, red HaltCR, grey HaltOracle)")
    ax.legend(loc="best", fontsize=8)
    _save(fig, out / "collateral.png")
    made.append(
        ("collateral.png", "The collateral ratio with its thresholds, over the status of each epoch.")
    )

    fig, ax = plt.subplots(figsize=(9, 3.5))
    ax.stackplot(
        x,
        table["reissued"],
        table["new_issuance"],
        table["emission_released"],
        labels=["re-issued (redemptions)", "new issuance (redemptions)", "emission"],
        colors=["#90caf9", "#1565c0", "#ffb74d"],
        alpha=0.9,
    )
    ax.plot(x, table["burned"], color="#c62828", lw=1.2, label="burned")
    ax.set_ylabel("CMP per epoch")
    ax.set_xlabel("epoch")
    ax.set_title("Burn versus mint")
    ax.legend(loc="best", fontsize=8)
    _save(fig, out / "burn_mint.png")
    made.append(
        ("burn_mint.png", "CMP burned for credits against CMP minted: re-issue, new issuance, emission.")
    )

    fig, ax = plt.subplots(figsize=(9, 3.5))
    ax.bar(x, table["rewards_claimed"], width=1.0, color="#ffb74d", label="emission rewards claimed (CMP)")
    ax.set_ylabel("CMP per epoch")
    twin = ax.twinx()
    twin.plot(
        x, table["credits_redeemed"].cumsum(), color="#1f4e79", label="earnings redeemed (USD, cumulative)"
    )
    twin.plot(x, table["operator_earnings"], color="#6a1b9a", lw=1, label="earnings unredeemed (USD)")
    twin.set_ylabel("USD")
    ax.set_xlabel("epoch")
    ax.set_title("Operator rewards and earnings")
    lines = ax.get_legend_handles_labels()
    more = twin.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], loc="upper left", fontsize=8)
    _save(fig, out / "rewards.png")
    made.append(("rewards.png", "Emission rewards claimed by operators, and their job earnings."))

    fig, ax = plt.subplots(figsize=(9, 3.5))
    for column, colour in (
        ("jobs_requested", "#9e9e9e"),
        ("jobs_settled", "#2e7d32"),
        ("jobs_rejected", "#c62828"),
        ("jobs_expired", "#ef6c00"),
    ):
        ax.plot(x, table[column], label=column.removeprefix("jobs_"), color=colour, lw=1)
    ax.set_ylabel("jobs per epoch")
    ax.set_xlabel("epoch")
    ax.set_title("Jobs")
    ax.legend(loc="best", fontsize=8)
    _save(fig, out / "jobs.png")
    made.append(
        ("jobs.png", "Jobs requested, settled, rejected (no quote, no funds or reverted) and expired.")
    )
    return made


# ---------------------------------------------------------------------------------------------- pages

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1000px; margin: 2em auto; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
td, th { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
figure { margin: 1.5em 0; } img { max-width: 100%; } figcaption { color: #555; font-size: 0.9em; }
pre { background: #f7f7f7; padding: 1em; overflow-x: auto; font-size: 0.85em; }
"""


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        return f"{value:,.4g}" if abs(value) < 1_000 else f"{value:,.0f}"
    return html.escape(str(value))


def _table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_fmt(r.get(c, ''))}</td>" for c in columns) + "</tr>" for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _page(title: str, sections: list[str]) -> str:
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body>{''.join(sections)}</body></html>\n"
    )


def _thresholds(scenario_text: str) -> dict[str, int]:
    from bme.scenario.loading import parse_raw

    try:
        protocol = parse_raw(scenario_text).get("protocol") or {}
    except Exception:  # a report must not fail on a scenario it cannot read: fall back to the defaults
        protocol = {}
    out = dict(DEFAULT_THRESHOLDS)
    for key in out:
        value = protocol.get(key) if isinstance(protocol, dict) else None
        if isinstance(value, int) and not isinstance(value, bool):
            out[key] = value
    return out


def build_run_report(directory: Path) -> Path:
    """Rebuilds the plots and `report.html` of the run in `directory`."""
    table = read_table(directory)
    scenario_text = (directory / SCENARIO_FILE).read_text() if (directory / SCENARIO_FILE).exists() else ""
    run = read_json(directory / RUN_FILE)
    timing = read_json(directory / TIMING_FILE)
    plots = plot_run(table, _thresholds(scenario_text), directory / PLOTS_DIR)
    summary = summarize(table)
    summary.update(run.get("wash", {}))
    title = f"Scenario {run.get('scenario', directory.name)} ({run.get('engine', '?')})"
    sections = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p>{html.escape(str(run.get('description', '')))}</p>",
        "<h2>Headline figures</h2>",
        _table([{"figure": k, "value": v} for k, v in summary.items()], ["figure", "value"]),
        "<p>Tables: <a href='epochs.csv'>epochs.csv</a>, <a href='epochs.parquet'>epochs.parquet</a>.</p>",
    ]
    for name, caption in plots:
        sections.append(
            f"<figure><img src='{PLOTS_DIR}/{name}' alt='{html.escape(caption)}'>"
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )
    sections.append(f"<h2>Scenario</h2><pre>{html.escape(scenario_text)}</pre>")
    versions = run.get("versions", {})
    sections.append(
        "<h2>Versions</h2>"
        + _table([{"software": k, "version": v} for k, v in versions.items()], ["software", "version"])
    )
    if timing:
        sections.append(
            "<h2>Timing</h2>"
            + _table([{"figure": k, "value": v} for k, v in timing.items()], ["figure", "value"])
        )
    path = directory / REPORT_FILE
    path.write_text(_page(title, sections))
    return path


def plot_sweep(
    runs: list[tuple[str, pd.DataFrame]], summaries: pd.DataFrame, swept: list[str], out: Path
) -> list[tuple[str, str]]:
    """Comparison plots of a sweep's runs; returns (file name, caption) pairs."""
    plt = _pyplot()
    out.mkdir(parents=True, exist_ok=True)
    made: list[tuple[str, str]] = []
    for column, ylabel, name, caption in (
        ("cmp_supply", "CMP supply", "sweep_supply.png", "CMP supply over time, one line per run."),
        (
            "collateral_ratio",
            "collateral ratio",
            "sweep_collateral.png",
            "Collateral ratio over time, per run.",
        ),
        ("net_burn", "cumulative net burn (CMP)", "sweep_net_burn.png", "Cumulative net burn, per run."),
    ):
        fig, ax = plt.subplots(figsize=(9, 4))
        for label, table in runs:
            series = table[column].cumsum() if column == "net_burn" else table[column]
            ax.plot(table["epoch"], series, lw=1, label=label)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        if len(runs) <= 12:
            ax.legend(loc="best", fontsize=7)
        _save(fig, out / name)
        made.append((name, caption))
    numeric = [
        p
        for p in swept
        if p in summaries
        and summaries[p].map(lambda v: isinstance(v, int | float) and not isinstance(v, bool)).all()
    ]
    if len(numeric) == 1:
        p = numeric[0]
        ordered = summaries.sort_values(p)
        fig, axes = plt.subplots(1, 3, figsize=(11, 3.5))
        for ax, metric in zip(
            axes, ("supply_change_pct", "net_burn_cmp", "min_collateral_ratio"), strict=True
        ):
            ax.plot(ordered[p], ordered[metric], marker="o")
            ax.set_xlabel(p.rsplit(".", 1)[-1])
            ax.set_title(metric, fontsize=9)
        _save(fig, out / "sweep_metrics.png")
        made.append(("sweep_metrics.png", f"Headline figures against {p}."))
    return made


def build_sweep_report(directory: Path) -> Path:
    """Rebuilds the comparison plots and `report.html` of the sweep in `directory`."""
    import pandas as pd

    meta = read_json(directory / SWEEP_FILE)
    points = meta.get("points", [])
    swept = list(meta.get("parameters", []))
    runs = [(p["name"], read_table(directory / RUNS_DIR / p["name"])) for p in points]
    rows = []
    for p, (_, table) in zip(points, runs, strict=True):
        rows.append({"run": p["name"], **p["overrides"], **summarize(table)})
    summaries = pd.DataFrame(rows)
    summaries.to_csv(directory / "sweep.csv", index=False, lineterminator="\n")
    plots = plot_sweep(runs, summaries, swept, directory / PLOTS_DIR)
    columns = ["run", *swept, "supply_change_pct", "net_burn_cmp", "emission_cmp", "min_collateral_ratio"]
    columns += ["epochs_HaltCR", "epochs_HaltOracle", "jobs_settled", "jobs_rejected", "rewards_claimed_cmp"]
    title = f"Sweep of {meta.get('scenario', directory.name)} ({meta.get('engine', '?')}, {len(points)} runs)"
    sections = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p>Swept: {html.escape(', '.join(swept) or 'nothing')}. "
        f"Full figures: <a href='sweep.csv'>sweep.csv</a>; "
        f"each run's table under <code>{RUNS_DIR}/</code>.</p>",
        _table(rows, columns),
    ]
    for name, caption in plots:
        sections.append(
            f"<figure><img src='{PLOTS_DIR}/{name}' alt='{html.escape(caption)}'>"
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )
    path = directory / REPORT_FILE
    path.write_text(_page(title, sections))
    return path


def build_report(directory: Path) -> Path:
    """The report of a run or a sweep directory, rebuilt from its files."""
    from bme.errors import ConfigError

    if not directory.is_dir():
        raise ConfigError(f"{directory} is not a directory")
    if (directory / SWEEP_FILE).exists():
        return build_sweep_report(directory)
    return build_run_report(directory)
