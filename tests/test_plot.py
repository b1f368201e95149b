"""seqgen.app.plot and seqgen.io.atomic: PNGs are produced, files are written atomically."""
import numpy as np
import pytest

from seqgen.app.plot import (
    plot_generated_csv,
    plot_generation,
    plot_loss,
    read_generated_csv,
    write_generated_csv,
)
from seqgen.errors import SeqgenError
from seqgen.io.atomic import (
    atomic_open,
    atomic_write,
    atomic_write_bytes,
    format_cell,
    format_cells,
    write_csv_atomic,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if ".tmp-" in p.name)


def _assert_png(path):
    data = path.read_bytes()
    assert len(data) > 1000 and data.startswith(PNG_MAGIC)


# ---------------------------------------------------------------- plots


def test_plot_generation_png(tmp_path):
    steps = np.arange(50)
    gen = np.sin(steps / 5.0).astype(np.float32)
    true = np.sin(steps[:40] / 5.0 + 0.1)
    out = tmp_path / "gen.png"
    plot_generation(steps, gen, true, prime=10, path=out, title="lstm_short")
    _assert_png(out)
    assert _leftovers(tmp_path) == []


def test_plot_generation_without_true_and_multidim(tmp_path):
    out = tmp_path / "a.png"
    plot_generation(None, np.linspace(0, 1, 20), path=out)
    _assert_png(out)
    out2 = tmp_path / "b.png"
    plot_generation(np.arange(30), np.random.default_rng(0).normal(size=(30, 3)),
                    np.zeros((30, 3)), prime=5, path=out2)
    _assert_png(out2)


def test_plot_generation_rejects_mismatched_lengths(tmp_path):
    with pytest.raises(ValueError):
        plot_generation(np.arange(5), np.zeros(6), path=tmp_path / "x.png")
    with pytest.raises(ValueError):
        plot_generation(None, np.zeros(5), np.zeros(6), path=tmp_path / "x.png")
    assert list(tmp_path.iterdir()) == []


def test_plot_loss_png(tmp_path):
    it = np.arange(200)
    loss = 0.2 * np.exp(-it / 50.0) + 1e-3
    loss[3] = 0.0  # not drawable on a log axis: skipped, not an error
    out = tmp_path / "loss.png"
    plot_loss(it, loss, out, title="training loss")
    _assert_png(out)
    out2 = tmp_path / "none.png"
    plot_loss([0, 1], [np.nan, 0.0], out2)
    _assert_png(out2)
    assert _leftovers(tmp_path) == []


def test_plot_into_missing_folder_names_the_file(tmp_path):
    target = tmp_path / "no_such_dir" / "loss.png"
    with pytest.raises(SeqgenError, match="loss.png"):
        plot_loss([0, 1], [1.0, 0.5], target)


# ---------------------------------------------------------------- generated.csv


def test_generated_csv_round_trip(tmp_path):
    gen = (np.arange(6, dtype=np.float32) / 7).astype(np.float32)
    true = np.array([0.1, 0.2, 0.3], np.float32)
    p = tmp_path / "generated.csv"
    write_generated_csv(p, gen, true)
    lines = p.read_text().splitlines()
    assert lines[0] == "step,true,generated"
    assert lines[-1].startswith("5,,")
    d = read_generated_csv(p)
    np.testing.assert_array_equal(d["step"], np.arange(6))
    np.testing.assert_array_equal(d["generated"], gen)  # 9 digits: float32 round-trips
    np.testing.assert_array_equal(d["true"], true)
    png = tmp_path / "generated.png"
    plot_generated_csv(p, png, prime=2)
    _assert_png(png)


def test_generated_csv_without_true(tmp_path):
    p = tmp_path / "g.csv"
    write_generated_csv(p, np.array([1.5, np.nan], np.float32), steps=[10, 11])
    d = read_generated_csv(p)
    assert d["true"] is None
    np.testing.assert_array_equal(d["step"], [10, 11])
    assert d["generated"][0] == 1.5 and np.isnan(d["generated"][1])


@pytest.mark.parametrize("content,fragment", [
    ("", "empty"),
    ("a,b,c\n1,2,3\n", "header"),
    ("step,true,generated\n", "no data"),
    ("step,true,generated\n0,1\n", "line 2"),
    ("step,true,generated\n0,1,2\nx,1,2\n", "line 3, column 1"),
    ("step,true,generated\n0,1,\n", "column 3"),
    ("step,true,generated\n0,,1\n1,2,3\n", "line 3, column 2"),
    ("step,true,generated\n0,zz,1\n", "line 2, column 2"),
])
def test_read_generated_csv_errors(tmp_path, content, fragment):
    p = tmp_path / "bad.csv"
    p.write_text(content)
    with pytest.raises(SeqgenError) as ei:
        read_generated_csv(p)
    assert str(p) in str(ei.value) and fragment in str(ei.value), str(ei.value)


def test_read_generated_csv_missing(tmp_path):
    with pytest.raises(SeqgenError, match="gone.csv"):
        read_generated_csv(tmp_path / "gone.csv")


# ---------------------------------------------------------------- atomic writes


def test_write_csv_atomic_formats_and_pads(tmp_path):
    p = tmp_path / "t.csv"
    write_csv_atomic(p, ["i", "a", "b", "c"],
                     [np.arange(3), np.array([0.1, 0.2], np.float64), None,
                      np.array([1 / 3] * 3, np.float32)])
    assert p.read_text().splitlines() == [
        "i,a,b,c", "0,0.1,,0.333333343", "1,0.2,,0.333333343", "2,,,0.333333343"]
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("column", [
    np.array([1 / 3, np.nan, -np.inf, -0.0, 1e-45], np.float32),
    np.array([0.1, 1e300, 5e-324, np.inf]), np.array([0.1, 65504], np.float16),
    np.array([-3, 7], np.int8), np.array([2 ** 64 - 1], np.uint64), np.array([True, False]),
    np.array([None, np.float32(0.1), 0.1, 3, True, "x"], object), np.array(["a", "bc"])])
def test_columns_and_single_cells_follow_the_same_rules(column):
    """A whole column (write_csv_atomic) is written as its values one by one (the loss log)."""
    assert format_cells(column) == [format_cell(v) for v in column]


def test_format_cell_rules():
    assert [format_cell(v) for v in (None, True, np.bool_(False), 10 ** 30, np.uint8(7))] == \
        ["", "1", "0", "1" + "0" * 30, "7"]
    assert [format_cell(v) for v in (np.float32(0.1), 0.1, np.float64(0.1), 1 + 2j, "s")] == \
        ["0.100000001", "0.1", "0.1", "(1+2j)", "s"]


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    p = tmp_path / "f.txt"
    p.write_text("old")
    atomic_write(p, lambda tmp: tmp.write_text("new"))
    assert p.read_text() == "new"
    assert _leftovers(tmp_path) == []


def test_atomic_write_keeps_old_file_when_writer_raises(tmp_path):
    p = tmp_path / "f.txt"
    p.write_text("old")

    def writer(tmp):
        tmp.write_text("half")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        atomic_write(p, writer)
    assert p.read_text() == "old"
    assert _leftovers(tmp_path) == []


def test_atomic_open_keeps_old_file_on_exception(tmp_path):
    p = tmp_path / "g.csv"
    p.write_text("old")
    with pytest.raises(KeyError):
        with atomic_open(p, "w") as fh:
            fh.write("partial")
            raise KeyError("x")
    assert p.read_text() == "old"
    assert _leftovers(tmp_path) == []
    with atomic_open(p, "wb") as fh:
        fh.write(b"complete")
    assert p.read_text() == "complete"


def test_failed_plot_does_not_clobber_existing_png(tmp_path, monkeypatch):
    out = tmp_path / "loss.png"
    out.write_bytes(b"previous figure")
    from matplotlib.figure import Figure

    def broken_savefig(self, fname, **kw):
        with open(fname, "wb") as fh:
            fh.write(PNG_MAGIC)  # a truncated image ...
        raise OSError("disk full")  # ... then the failure

    monkeypatch.setattr(Figure, "savefig", broken_savefig)
    with pytest.raises(OSError, match="disk full"):
        plot_loss([0, 1], [1.0, 0.5], out)
    assert out.read_bytes() == b"previous figure"
    assert _leftovers(tmp_path) == []


def test_atomic_write_bytes(tmp_path):
    p = tmp_path / "w.bin"
    atomic_write_bytes(p, b"\x00\x01")
    assert p.read_bytes() == b"\x00\x01"
    assert _leftovers(tmp_path) == []


# ---------------------------------------------------------------- titles and the loss figure


def test_titles():
    from seqgen.app.plot import generation_title, loss_title

    assert loss_title("lstm_short") == "lstm_short: loss"
    assert loss_title("lstm_short", diverged=True) == "lstm_short: loss (diverged)"
    assert loss_title(None) == "loss"
    assert generation_title("lstm_short", 320, "previous") == (
        "lstm_short: 320 steps free-running (input mode 'previous')")
    assert generation_title("n", 500, "zero", prime=40, mse=0.012345, max_abs_error=0.5,
                            mse_steps=320) == (
        "n: 500 steps, primed with 40 true steps, then free-running (input mode 'zero')\n"
        "MSE 0.01235 over the first 320 of 500 steps, max abs error 0.5")
    assert generation_title("n", 320, "previous", mse=0.25, max_abs_error=1.0,
                            mse_steps=320).endswith("\nMSE 0.25, max abs error 1")
    assert generation_title(None, 320, prime=None) == "320 steps generated"


def _lines(fig):
    return {line.get_label(): line for line in fig.axes[0].get_lines()}


def test_loss_plot_draws_a_running_mean_over_the_raw_loss(tmp_path):
    from seqgen.app.plot import loss_window, running_mean

    rng = np.random.default_rng(0)
    it = np.arange(960)
    loss = 0.05 + 0.04 * np.sign(np.sin(it * np.pi / 2 + 0.1)) + 0.001 * rng.random(960)
    fig = plot_loss(it, loss, tmp_path / "loss.png", title="lstm_long: loss")
    lines = _lines(fig)
    window = loss_window(960)
    assert 5 <= window <= 30
    raw, mean = lines["loss (each iteration)"], lines[f"loss, running mean of {window}"]
    np.testing.assert_allclose(mean.get_ydata(), running_mean(loss, window))
    assert raw.get_linewidth() < mean.get_linewidth() and raw.get_alpha() < 0.5
    assert mean.get_zorder() > raw.get_zorder()
    # the mean of an alternating loss is nearly flat: no solid band
    assert np.ptp(mean.get_ydata()[window:]) < 0.25 * np.ptp(loss)
    assert fig.axes[0].get_title() == "lstm_long: loss"
    _assert_png(tmp_path / "loss.png")


def test_running_mean_is_trailing_and_skips_non_finite_values():
    from seqgen.app.plot import running_mean

    got = running_mean([1.0, 3.0, np.nan, 5.0, 7.0], 2)
    np.testing.assert_allclose(got, [1.0, 2.0, 3.0, 5.0, 6.0])
    assert np.isnan(running_mean([np.nan, np.inf], 3)).all()


def test_loss_axis_is_log_only_when_the_values_span_more_than_a_decade(tmp_path):
    it = np.arange(300)
    decades = plot_loss(it, 0.5 * np.exp(-it / 40.0) + 1e-4, tmp_path / "a.png")
    assert decades.axes[0].get_yscale() == "log"
    narrow = plot_loss(it, 0.2 - 0.1 * it / 300, tmp_path / "b.png")
    assert narrow.axes[0].get_yscale() == "linear"
    # a held-out loss far above the train loss makes the span, too
    with_test = plot_loss(it, 0.2 - 0.1 * it / 300, tmp_path / "c.png",
                          test_iterations=[299], test_losses=[5.0])
    assert with_test.axes[0].get_yscale() == "log"


def test_a_single_test_point_is_drawn_on_top_and_the_legend_covers_no_data(tmp_path):
    it = np.arange(960)
    loss = 0.3 * np.exp(-it / 200.0) * (1.5 + np.sin(it * np.pi / 2))
    fig = plot_loss(it, loss, tmp_path / "loss.png", test_iterations=[960],
                    test_losses=[0.2])
    lines = _lines(fig)
    test = lines["test loss (held out)"]
    train = [line for label, line in lines.items() if label.startswith("train loss")]
    assert len(train) == 2
    assert test.get_zorder() > max(line.get_zorder() for line in train)
    assert test.get_marker() == "o" and test.get_markersize() >= 6
    np.testing.assert_array_equal(test.get_xdata(), [960])
    ax = fig.axes[0]
    renderer = fig.canvas.get_renderer()
    legend = ax.get_legend().get_window_extent(renderer)
    assert legend.x0 >= ax.get_window_extent(renderer).x1  # beside the axes, not on them
    assert legend.x1 <= fig.bbox.x1  # and still inside the figure


def test_a_figure_is_laid_out_tight_and_drawn_once(tmp_path, monkeypatch):
    """tight_layout's margins, and one draw per PNG: no unseen draw before it for a layout
    engine left behind (app/plot.py's _lay_out)."""
    from matplotlib.figure import Figure

    draws = []
    draw = Figure.draw
    monkeypatch.setattr(Figure, "draw", lambda self, renderer: draws.append(1) or
                        draw(self, renderer))
    x = np.arange(50)
    fig = plot_generation(x, np.sin(x / 5), np.cos(x / 5), 10, path=tmp_path / "g.png",
                          title="a title")
    assert len(draws) == 1
    # matplotlib's default margins leave 0.125 left and 0.1 right; tight_layout takes what
    # the labels need
    assert fig.subplotpars.left < 0.11 and fig.subplotpars.right > 0.95
    plot_loss(x, np.exp(-x / 10), tmp_path / "l.png")
    assert len(draws) == 2
