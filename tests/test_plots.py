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
