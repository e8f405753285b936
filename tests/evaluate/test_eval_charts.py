"""Charts label subjects with their real (Chinese) names when a CJK font is installed
(`make install` installs Debian's fonts-noto-cjk), and with ASCII keys, quietly, when none is."""

from __future__ import annotations

import os
import warnings

import pytest

from factory_kit.core import charts
from factory_kit.evaluate import benchmarks as bm
from factory_kit.evaluate import compare as cmp

SUBJECTS = ("中药学", "方剂学", "针灸学")


def _result(folder, label, right):
    items = [{"benchmark": "执业医师", "subject": s, "id": f"{s}-{i}", "answer": "A", "predicted": "A",
              "correct": i < right} for s in SUBJECTS for i in range(4)]
    path = folder / f"{label}.json"
    path.write_text(bm.json.dumps({"kind": "benchmark", "label": label, "model": "m", **bm.summarize(items)}),
                    encoding="utf-8")
    return path


def _drawn_ticks(monkeypatch, tmp_path) -> list[str]:
    """The x tick labels of the figure `compare` really draws."""
    import matplotlib.pyplot as plt

    figures, close = [], plt.close
    monkeypatch.setattr(plt, "close", lambda fig=None: (figures.append(fig), close(fig)))
    cmp.compare(_result(tmp_path, "base", 1), _result(tmp_path, "tuned", 3), tmp_path / "cmp", title="中医: base vs tuned")
    [fig] = figures
    return [t.get_text() for t in fig.axes[0].get_xticklabels()]


def _font_or_skip() -> str:
    charts.cjk_font.cache_clear()
    font = charts.cjk_font()
    if font is None:
        message = "no CJK font installed: apt-get install fonts-noto-cjk (scripts/install-system-deps.sh)"
        if os.environ.get("FACTORY_KIT_REQUIRE_CJK_FONT") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return font


def test_chart_labels_are_the_chinese_subject_names(monkeypatch, tmp_path):
    _font_or_skip()
    assert _drawn_ticks(monkeypatch, tmp_path) == ["执业医师 / 中药学", "执业医师 / 方剂学", "执业医师 / 针灸学",
                                                   "执业医师 (all)", "Overall"]
    assert (tmp_path / "cmp.png").stat().st_size > 10_000


def test_a_font_installed_after_matplotlib_cached_its_list_is_found(monkeypatch):
    """matplotlib builds its font cache once per machine: a font installed later is not in it."""
    from matplotlib import font_manager

    _font_or_skip()
    without = [f for f in font_manager.fontManager.ttflist if f.name not in charts.CJK_FONTS]
    monkeypatch.setattr(font_manager.fontManager, "ttflist", without)
    charts.cjk_font.cache_clear()
    assert charts.cjk_font() in charts.CJK_FONTS
    charts.cjk_font.cache_clear()


def test_without_a_cjk_font_keys_label_the_chart_quietly(monkeypatch, tmp_path):
    monkeypatch.setattr(charts, "cjk_font", lambda: None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ticks = _drawn_ticks(monkeypatch, tmp_path)
    assert ticks == ["B1.S1", "B1.S2", "B1.S3", "B1", "Overall"]
    assert not [w for w in caught if "missing from font" in str(w.message)]
    table = (tmp_path / "cmp.md").read_text(encoding="utf-8")
    assert "| B1.S2 | 执业医师 / 方剂学 |" in table  # the table says what each key means


def test_plain_labels_need_no_cjk_font(monkeypatch):
    monkeypatch.setattr(charts, "cjk_font", lambda: None)
    assert charts.can_draw(["exam / s1", "Overall"]) and not charts.can_draw(["exam / 中药"])
