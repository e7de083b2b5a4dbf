"""Reading strategies.toml: every mistake is one line naming the file, the instance and the
field; the class is imported only on demand."""

from __future__ import annotations

from pathlib import Path

import pytest

from strategy_host.strategies_file import read_file
from trading.strategy.config_file import LoadError, load_class, validate_params
from trading.strategy.instance import allowed


TOML_OK = """
[strategies.a]
class = "strategy_host.examples.ema_cross:EmaCross"
contract = "ES"
timeframes = ["5m"]
[strategies.a.params]
fast = 5
[strategies.a.limits]
max_lots = 2
"""


def test_loader_reads_and_validates(tmp_path: Path) -> None:
    f = tmp_path / "s.toml"
    f.write_text(TOML_OK)
    a = read_file(f)["a"]
    assert a.contracts == ["ES"] and a.limits.max_lots == 2 and a.run_on == ["sim"]
    cls = load_class(a, tmp_path, f)
    assert validate_params(a, cls, f).fast == 5  # type: ignore[attr-defined]


@pytest.mark.parametrize("text,expected", [
    (TOML_OK + '\n[strategies.a]\nclass = "x:Y"\n', "[strategies.a] name: duplicate"),
    (TOML_OK.replace('contract = "ES"', 'contract = "es!"'), "[strategies.a] contracts: "
     "unknown contract"),
    (TOML_OK.replace('"5m"', '"7x"'), "[strategies.a] timeframes"),
    (TOML_OK.replace("max_lots = 2", "max_lot = 2"), "[strategies.a] limits.max_lot: unknown"),
    (TOML_OK.replace('class = "strategy_host.examples.ema_cross:EmaCross"\n', ""),
     "[strategies.a] class: missing"),
])
def test_loader_mistakes_name_file_instance_field(tmp_path: Path, text: str, expected: str) -> None:
    f = tmp_path / "s.toml"
    f.write_text(text)
    with pytest.raises(LoadError) as err:
        read_file(f)
    assert str(f) in str(err.value) and expected in str(err.value), str(err.value)


def test_unknown_class_and_bad_params(tmp_path: Path) -> None:
    f = tmp_path / "s.toml"
    f.write_text(TOML_OK.replace("ema_cross:EmaCross", "ema_cross:Nope"))
    with pytest.raises(LoadError, match=r"\[strategies.a\] class: unknown class"):
        load_class(read_file(f)["a"], tmp_path, f)
    f.write_text(TOML_OK.replace("fast = 5", "fast = 'quick'"))
    a = read_file(f)["a"]
    with pytest.raises(LoadError, match=r"\[strategies.a\] params.fast: .*quick"):
        validate_params(a, load_class(a, tmp_path, f), f)
    (tmp_path / "mine.py").write_text(
        "from strategy_host.api import Strategy\nclass Mine(Strategy):\n    pass\n")
    f.write_text(TOML_OK.replace("strategy_host.examples.ema_cross:EmaCross", "mine.py:Mine")
                 .replace("[strategies.a.params]\nfast = 5\n", ""))
    assert load_class(read_file(f)["a"], tmp_path, f).__name__ == "Mine"


def test_shipped_examples_never_trade_real_money() -> None:
    """Every instance of the shipped strategies.toml runs on the sim only: with credentials
    set (live venue) none is allowed, whatever the account."""
    from tests.support import ROOT

    instances = read_file(ROOT / "strategies.toml")
    assert any(allowed(i, False, None, None)[0] for i in instances.values())
    for i in instances.values():
        assert not allowed(i, True, 12345, "50KTC-V2-1")[0]
