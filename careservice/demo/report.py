"""The simulation's coverage table and equity block, as text."""

COLUMNS = (("registered", "registered", "{:d}"), ("served", "served", "{:d}"),
           ("coverage_rate", "coverage", "{:.1%}"), ("sessions_completed", "completed", "{:d}"),
           ("no_show_rate", "no-show", "{:.1%}"), ("median_wait_days", "wait d", "{:.1f}"),
           ("unmet_requests", "unmet", "{:d}"))


def _cell(value, form: str) -> str:
    return "-" if value is None else form.format(value)


def print_report(result: dict, *, weeks: int, policy: str, seed: int, echo) -> None:
    echo(f"Simulated {weeks} weeks, policy {policy}, seed {seed}")
    echo(f"{'county':<18}" + "".join(f"{title:>11}" for _, title, _ in COLUMNS))
    for row in result["counties"]["rows"]:
        echo(f"{row['label'][:17]:<18}" + "".join(
            f"{_cell(row[key], form):>11}" for key, _, form in COLUMNS))
    villages = [row for row in result["villages"]["rows"] if row["registered"]]
    worst = min(villages, key=lambda row: (row["coverage_rate"] or 0, row["label"]))
    equity = result["villages"]["equity"]
    requests = result["requests"]
    echo(f"requests: {sum(requests.values())} made, " + ", ".join(
        f"{count} {status}" for status, count in sorted(requests.items())))
    echo(f"worst-served village: {worst['label']} {_cell(worst['coverage_rate'], '{:.1%}')}"
         f" ({worst['served']}/{worst['registered']})")
    echo("equity: " + ", ".join(f"{key} {_cell(value, '{:.3f}')}" if key != "villages"
                                else f"{key} {value}" for key, value in equity.items()))
