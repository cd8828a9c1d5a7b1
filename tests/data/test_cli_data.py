"""`ardistill data preview`: writes a PNG grid; user mistakes exit with code 2."""

import pytest
from PIL import Image

from ardistill.cli import main


def run(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


def test_preview_writes_grid(tmp_path, capsys):
    out = tmp_path / "grid.png"
    code, stdout, _ = run(["data", "preview", "--out", str(out), "--num-images", "24", "--size", "32"], capsys)
    assert code == 0 and "disc" in stdout
    with Image.open(out) as im:
        # 12 per row (one column per class), 2 rows, 32 px tiles shown 4× (128 px) with 2 px padding
        assert im.size == (12 * 130 + 2, 2 * 130 + 2)
    code, stdout, _ = run(["data", "preview", "--out", str(out), "--num-images", "24", "--size", "32", "--upscale", "1"], capsys)
    with Image.open(out) as im:  # native size on request
        assert code == 0 and im.size == (12 * 34 + 2, 2 * 34 + 2)


def test_preview_bad_size_is_one_line_error(tmp_path, capsys):
    code, _, err = run(["data", "preview", "--out", str(tmp_path / "g.png"), "--size", "48"], capsys)
    assert code == 2 and "size" in err and len(err.strip().splitlines()) == 1
