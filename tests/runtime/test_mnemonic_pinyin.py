"""The standard pack's mnemonic (助记码) reads pinyin without pypinyin's 35 MB phrase dictionary:
only the phrases whose initials differ from their characters' usual readings are loaded
(packs/standard_crm/pinyin_phrases.json), and the initials match the full dictionary's on the
demo's company names."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT

PROBE = r"""
import importlib.util, json, sys
def rss():
    return int(next(l for l in open('/proc/self/status') if l.startswith('VmRSS')).split()[1]) // 1024
sys.path.insert(0, ROOT)
mode = sys.argv[1]
names = json.loads(sys.stdin.read())
spec = importlib.util.spec_from_file_location("h", ROOT + "/packs/standard_crm/hooks.py")
hooks = importlib.util.module_from_spec(spec)
spec.loader.exec_module(hooks)
assert "pypinyin" not in sys.modules  # imported on first use only
before = rss()
if mode == "pack":
    out = [hooks.mnemonic(n) for n in names]
    from pypinyin.constants import PHRASES_DICT
    phrases = len(PHRASES_DICT)
else:
    from pypinyin import Style, lazy_pinyin
    out = ["".join(s[0] for s in lazy_pinyin(n, style=Style.FIRST_LETTER) if s).upper() or None for n in names]
    from pypinyin.constants import PHRASES_DICT
    phrases = len(PHRASES_DICT)
print(json.dumps({"out": out, "grown_mb": rss() - before, "phrases": phrases}))
""".replace("ROOT", repr(str(ROOT)))


def run(mode: str, names: list[str]) -> dict:
    done = subprocess.run([sys.executable, "-c", PROBE, mode], input=json.dumps(names), capture_output=True,
                          text=True, check=True, env={"PATH": "/usr/bin:/bin"})
    return json.loads(done.stdout)


def demo_names() -> list[str]:
    from engine import demo

    return [city + brand for city, *_ in demo.CITIES for brand in demo.BRANDS] + \
           [trade + suffix for trade, _ in demo.TRADES for suffix, _ in demo.SUFFIXES]


def test_initials_match_the_full_dictionary_on_demo_names_and_cost_little_memory() -> None:
    names = demo_names() + ["重庆长安汽车", "厦门华信", "长沙银行", "中国建设银行", "长春一汽"]
    ours, full = run("pack", names), run("full", names)
    assert ours["phrases"] < 5000 < full["phrases"]
    differ = {n: (a, b) for n, a, b in zip(names, ours["out"], full["out"], strict=True) if a != b}
    # The full dictionary reads 杭州长青 as 杭|州长|青 (州长, a governor: HZZQ); ours as 杭州|长青,
    # which is right: the only differences are of this kind, and ours are the better reading.
    assert differ and all(n.endswith("州长青") and a[:2] + "CQ" == a and b[:2] + "ZQ" == b
                          for n, (a, b) in differ.items()), differ
    assert dict(zip(names, ours["out"], strict=True))["重庆长安汽车"] == "CQCAQC"
    assert dict(zip(names, ours["out"], strict=True))["长沙银行"] == "CSYH"
    assert ours["grown_mb"] < 25 < full["grown_mb"], (ours["grown_mb"], full["grown_mb"])
