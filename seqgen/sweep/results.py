"""The tables of a sweep: DIR/results.csv (one row per run: settings, seed, scores, wall
time, status) and DIR/summary.md (per configuration: median, min and max over seeds)."""
import csv
import io
import os
import statistics

from ..io.atomic import atomic_write_text

#: scores shown when some run has them, in this order (evaluate_run's keys)
SCORES = ("final_loss", "test_loss", "mse", "max_abs_error", "perplexity", "bpc")


def setting_keys(specs):
    """Every KEY any run sets, in the order first given."""
    keys = []
    for spec in specs:
        keys += [k for k, _ in spec.settings if k not in keys]
    return keys


def score_keys(results):
    return [k for k in SCORES if any(r.get(k) is not None for r in results.values())]


def rows(specs, results):
    """One dict per run in the specs' order (a run without a result is 'not run')."""
    keys, scores = setting_keys(specs), score_keys(results)
    out = []
    for spec in specs:
        result = results.get(spec.name, {"status": "not run"})
        settings = dict(spec.settings)
        row = {"run": spec.name, "config": spec.config, "input": spec.mode or "",
               "seed": spec.seed, **{k: settings.get(k, "") for k in keys},
               "status": result["status"], "iterations": result.get("iterations")}
        row.update({k: result.get(k) for k in scores})
        row.update(wall_seconds=result.get("wall_seconds"),
                   resumed_from=result.get("resumed_from"), error=result.get("error") or "")
        out.append(row)
    return out


def groups(specs):
    """{(config, mode, settings): [specs over seeds]}: what the summary compares."""
    out = {}
    for spec in specs:
        out.setdefault((spec.config, spec.mode, spec.settings), []).append(spec)
    return out


def group_label(group):
    config, mode, settings = group
    return " ".join([config] + ([mode] if mode else []) + [f"{k}={v}" for k, v in settings])


def _spread(values):
    if not values:
        return "–"
    return (f"{statistics.median(values):.4g} [{min(values):.4g}–{max(values):.4g}]"
            if len(values) > 1 else f"{values[0]:.4g}")


def summary_table(specs, results):
    """The summary as markdown: one row per configuration, median [min–max] over seeds."""
    scores = score_keys(results)
    head = ["configuration", "runs ok"] + [f"{k} median [min–max]" for k in scores]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for group, members in groups(specs).items():
        ok = [results[s.name] for s in members
              if results.get(s.name, {}).get("status") == "ok"]
        cells = [group_label(group), f"{len(ok)}/{len(members)}"]
        cells += [_spread([r[k] for r in ok if r.get(k) is not None]) for k in scores]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_results(out, specs, results):
    """DIR/results.csv and DIR/summary.md; returns their paths."""
    table = rows(specs, results)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(table[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: "" if v is None else v for k, v in r.items()} for r in table)
    csv_path, md_path = os.path.join(out, "results.csv"), os.path.join(out, "summary.md")
    atomic_write_text(csv_path, buf.getvalue())
    bad = [r for r in table if r["status"] != "ok"]
    notes = "".join(f"- {r['run']}: {r['status']}" + (f": {r['error']}" if r["error"] else "")
                    + "\n" for r in bad)
    atomic_write_text(md_path, f"# Sweep {os.path.basename(out)}: {len(table)} runs\n\n"
                      + summary_table(specs, results)
                      + (f"\nRuns that did not finish well:\n\n{notes}" if notes else ""))
    return [csv_path, md_path]
