"""The report's FID-vs-speed-up plot names every point without printing one label over another."""

from ardistill.bench import report


def test_labels_of_nearby_points_do_not_overlap(tmp_path, monkeypatch):
    # The README's case: two shipped students 0.15 apart in FID and 0.14 apart in speed-up.
    points = [("teacher", 1.0, 2.96), ("dd2-var-toy-l-1step", 1.55, 5.99), ("dd-var-toy-l-1step", 1.69, 5.84),
              ("onestep", 2.55, 28.4)]
    boxes = []
    real = report.label_points

    def spy(fig, ax, pts, **kw):
        real(fig, ax, pts, **kw)
        renderer = fig.canvas.get_renderer()
        boxes.extend(t.get_window_extent(renderer) for t in ax.texts)

    monkeypatch.setattr(report, "label_points", spy)
    doc = {"teacher": "var-toy-l",
           "quality": {name: {"fid": fid} for name, _, fid in points},
           "speed": [{"method": name, "batch": 16, "speedup_total": x} for name, x, _ in points]}
    out = report.plot_quality(doc, tmp_path / "fid-vs-speedup.png")
    assert out and out[0].stat().st_size > 0
    assert len(boxes) == len(points)
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
