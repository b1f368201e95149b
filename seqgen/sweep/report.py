"""The report of a sweep: DIR/grid.png (per configuration, the generations and the loss
curves of every seed) and a self-contained DIR/index.html (the figure inlined as base64
PNG, the summary, and the results table, sortable by a few lines of inline JS)."""
import base64
import html
import io
import os

from ..errors import SeqgenError
from ..io.atomic import atomic_write_bytes, atomic_write_text
from ..runs.losslog import read_loss_csv
from .results import group_label, groups, rows, summary_table

MAX_ROWS = 40  # configurations drawn in the grid (the table has every run)


def _draw_generations(ax, members):
    from ..app.plot import read_generated_csv  # lazy: matplotlib only when drawing

    true_drawn = False
    for spec in members:
        try:
            d = read_generated_csv(os.path.join(spec.folder, "generated.csv"))
        except SeqgenError:
            continue
        if d["true"] is not None and not true_drawn:
            ax.plot(d["step"][:len(d["true"])], d["true"], ".", ms=1.5, color="tab:red",
                    label="true")
            true_drawn = True
        ax.plot(d["step"], d["generated"], "-", lw=0.8, alpha=0.8, label=f"seed {spec.seed}")


def _draw_losses(ax, members):
    from ..app.plot import loss_window, running_mean  # lazy: matplotlib only when drawing

    for spec in members:
        try:
            data = read_loss_csv(os.path.join(spec.folder, "loss.csv"))
        except SeqgenError:
            continue
        if len(data):
            # the running mean, as loss.png draws it: a long sequence's chunks differ a lot
            ax.plot(data[:, 0], running_mean(data[:, 1], loss_window(len(data))), lw=0.8,
                    label=f"seed {spec.seed}")
    ax.set_yscale("log")


def draw_grid(specs):
    """PNG bytes: one row per configuration, its generations (left) and losses (right)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # lazy: only when drawing
    from matplotlib.figure import Figure  # lazy: only when drawing

    items = list(groups(specs).items())[:MAX_ROWS]
    fig = Figure(figsize=(12, 2.4 * len(items)), dpi=80)
    FigureCanvasAgg(fig)
    for i, (group, members) in enumerate(items):
        gen, loss = fig.add_subplot(len(items), 2, 2 * i + 1), \
            fig.add_subplot(len(items), 2, 2 * i + 2)
        _draw_generations(gen, members)
        _draw_losses(loss, members)
        gen.set_title(f"{group_label(group)}: generated", fontsize=9)
        loss.set_title(f"{group_label(group)}: training loss", fontsize=9)
        for ax in (gen, loss):
            ax.tick_params(labelsize=7)
            if ax.lines:
                ax.legend(fontsize=6, loc="upper right")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


_SORT_JS = """
document.querySelectorAll('table.sortable th').forEach((th, col) => th.onclick = () => {
  const body = th.closest('table').tBodies[0], up = th.dataset.up !== '1';
  th.dataset.up = up ? '1' : '0';
  const key = r => { const t = r.cells[col].textContent, n = parseFloat(t);
                     return isNaN(n) ? t : n; };
  [...body.rows].sort((a, b) => { const x = key(a), y = key(b);
    return (x > y ? 1 : x < y ? -1 : 0) * (up ? 1 : -1); }).forEach(r => body.append(r));
});
"""


def _cell(value):
    if isinstance(value, float):
        return f"{value:.5g}"
    return html.escape("" if value is None else str(value))


def results_html(table):
    head = "".join(f"<th>{html.escape(k)}</th>" for k in table[0])
    body = "".join("<tr class='{}'>{}</tr>".format(
        html.escape(r["status"]), "".join(f"<td>{_cell(v)}</td>" for v in r.values()))
        for r in table)
    return (f"<table class='sortable'><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table>")


def summary_html(markdown):
    """The summary's markdown table as an HTML table."""
    lines = [line.strip("|").split(" | ") for line in markdown.strip().splitlines()]
    head = "".join(f"<th>{html.escape(c.strip())}</th>" for c in lines[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c.strip())}</td>" for c in row)
                   + "</tr>" for row in lines[2:])
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_STYLE = """body{font:14px sans-serif;margin:1.5em} table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:2px 6px;font-size:12px} th{background:#eee;cursor:pointer}
tr.failed td,tr.lost td{background:#fdd} tr.diverged td{background:#ffd} img{max-width:100%}"""


def write_report(out, specs, results):
    """DIR/grid.png and DIR/index.html; returns their paths."""
    png = draw_grid(specs)
    png_path, html_path = os.path.join(out, "grid.png"), os.path.join(out, "index.html")
    atomic_write_bytes(png_path, png)
    table = rows(specs, results)
    ok = sum(r["status"] == "ok" for r in table)
    title = html.escape(f"Sweep {os.path.basename(out)}")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
            f"<style>{_STYLE}</style></head><body><h1>{title}</h1>"
            f"<p>{len(table)} runs, {ok} ok. Click a column to sort.</p>"
            f"<h2>Summary over seeds</h2>{summary_html(summary_table(specs, results))}"
            f"<h2>Runs</h2>{results_html(table)}"
            f"<h2>Generations and training losses</h2>"
            f"<img alt='grid' src='data:image/png;base64,{base64.b64encode(png).decode()}'>"
            f"<script>{_SORT_JS}</script></body></html>")
    atomic_write_text(html_path, page)
    return [png_path, html_path]
