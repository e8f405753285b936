"""matplotlib for factory-kit's charts: no display needed, and a CJK font when one is
installed, so subject names are drawn in Chinese (``make install`` installs Debian's
``fonts-noto-cjk``). Without one, charts label with ASCII keys and stay quiet about it.
"""

from __future__ import annotations

import functools
import re
import warnings
from pathlib import Path
from typing import Any

# Preferred first: Simplified Chinese faces, then any other face of the same families.
CJK_FONTS = ("Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "Source Han Sans CN", "WenQuanYi Zen Hei",
             "WenQuanYi Micro Hei", "SimHei", "Microsoft YaHei", "PingFang SC", "Heiti SC", "Noto Sans CJK TC",
             "Noto Sans CJK JP", "Noto Serif CJK SC", "AR PL UMing CN", "Droid Sans Fallback")
# Font files worth showing matplotlib when its cache (built once per machine) predates them.
_CJK_FILE = re.compile(r"cjk|sourcehan|wqy|droidsansfallback|uming|ukai|simhei|msyh|pingfang", re.I)


@functools.cache
def cjk_font() -> str | None:
    """The family name of an installed font that draws Chinese, or None."""
    from matplotlib import font_manager

    def known() -> str | None:
        names = {f.name for f in font_manager.fontManager.ttflist}
        return next((name for name in CJK_FONTS if name in names), None)

    found = known()
    if found is None:  # installed after matplotlib cached its font list: add the files themselves
        for path in font_manager.findSystemFonts():
            if _CJK_FILE.search(Path(path).name):
                try:
                    font_manager.fontManager.addfont(path)
                except (OSError, RuntimeError, ValueError):
                    continue  # a file matplotlib cannot read
        found = known()
    return found


@functools.cache
def _charmap(font: str) -> frozenset[int]:
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    path = font_manager.findfont(font_manager.FontProperties(family=font), fallback_to_default=False)
    return frozenset(FT2Font(path).get_charmap())


def can_draw(texts: list[str]) -> bool:
    """Whether every character of ``texts`` can be drawn: plain text always, Chinese only
    with a CJK font that covers it (no boxes)."""
    wide = {ord(ch) for text in texts for ch in text if ord(ch) > 0x2E7F}
    if not wide:
        return True
    font = cjk_font()
    return font is not None and wide <= _charmap(font)


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend, with the CJK font (if any) ahead of the default."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    font = cjk_font()
    if font is not None:
        if plt.rcParams["font.sans-serif"][:1] != [font]:
            plt.rcParams["font.sans-serif"] = [font, *plt.rcParams["font.sans-serif"]]
    else:  # a Chinese title without a CJK font: boxes, not one warning per character
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from font", category=UserWarning)
    return plt
