"""The PNG plots: the rounds legend stays clear of the bars, the loss curve."""
from selfinstruct import plots
ROUNDS = [{"round": n, "kept": 3 + n, "rejected": {"similar": 20, "too_short": 4, "no_instances": 3,
                                                   "blacklist:image": 2, "truncated": 1}} for n in (1, 2, 3)]


def test_rounds_legend_does_not_cover_the_bars():
    fig = plots.rounds_figure(ROUNDS)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    legends = fig.legends + [a.get_legend() for a in fig.axes if a.get_legend()]
    assert len(legends) == 1
    box = legends[0].get_window_extent(renderer)
    assert len(legends[0].get_texts()) == 6                                 # kept + 5 reasons
    for ax in fig.axes:
        assert not box.overlaps(ax.get_window_extent(renderer)), ax.get_title()
        for bar in ax.patches:
            assert not box.overlaps(bar.get_window_extent(renderer))
    fig_box = fig.bbox
    assert box.x0 >= fig_box.x0 and box.x1 <= fig_box.x1 and box.y0 >= fig_box.y0 and box.y1 <= fig_box.y1


def test_plot_rounds_and_losses_write_pngs(tmp_path):
    assert plots.plot_rounds(ROUNDS, tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"
    rows = [{"type": "train", "step": s, "loss": 2.0 / s} for s in range(1, 6)] + [
        {"type": "eval", "step": 5, "eval_loss": 0.9}, {"type": "summary"}]
    png = plots.plot_losses(rows, tmp_path / "loss.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert plots.plot_losses([], tmp_path / "empty.png").exists()           # no rows yet: still a figure


def bar_colors(ax):
    """The face colour of each labelled bar series (one BarContainer a series)."""
    return {c.get_label(): c.patches[0].get_facecolor() for c in ax.containers}


def test_every_rejection_reason_has_its_own_colour_and_small_ones_group_as_other():
    from matplotlib.colors import to_rgba

    reasons = {f"reason_{i:02d}": 20 - i for i in range(14)} | {"blacklist:image": 3, "blacklist:graph": 2}
    rounds = [{"round": n, "kept": 5, "rejected": reasons} for n in (1, 2)]
    fig = plots.rounds_figure(rounds)
    colors = bar_colors(fig.axes[0])
    assert len(colors) <= 11 and "rejected: other" in colors                   # kept + 10 reasons at most
    assert len(set(colors.values())) == len(colors)                           # no colour twice
    assert colors["kept"] == to_rgba(plots.KEPT_COLOR)
    few = plots.rounds_figure(ROUNDS)                                         # 5 reasons: no "other"
    assert "rejected: other" not in bar_colors(few.axes[0]) and len(set(bar_colors(few.axes[0]).values())) == 6


def test_count_axes_have_integer_ticks():
    fig = plots.lengths_figure([3, 4, 4, 5], [10, 12])
    for ax in fig.axes:
        assert all(float(t).is_integer() for t in ax.get_yticks()), ax.get_yticks()
    fig = plots.first_words_figure([("write", 2), ("what", 1)])
    assert all(float(t).is_integer() for t in fig.axes[0].get_xticks())
    assert "first word" in fig.axes[0].get_title().lower() and "verb" not in fig.axes[0].get_title().lower()
