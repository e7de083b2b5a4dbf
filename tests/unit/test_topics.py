"""Topics: prefix subscriptions must never leak across contracts or timeframes."""

from __future__ import annotations

import pytest

from chillly import topics


def test_contract_subscription_does_not_match_a_contract_sharing_its_prefix() -> None:
    sub = topics.bar("1m", "CON.F.US.EP.Z26")
    assert topics.bar("1m", "CON.F.US.EP.Z26").startswith(sub)
    assert not topics.bar("1m", "CON.F.US.EP.Z261").startswith(sub)
    assert not topics.quote("CON.F.US.MES.Z26").startswith(topics.quote("CON.F.US.ME"))


def test_timeframe_prefix_does_not_match_a_longer_timeframe() -> None:
    assert not topics.bar("15m", "CON.F.US.EP.Z26").startswith(topics.bars("1m"))
    assert topics.bar("1m", "CON.F.US.EP.Z26").startswith(topics.bars("1m"))
    assert topics.bar("4h", "X").startswith(topics.bars())


def test_history_is_not_part_of_the_live_bar_stream() -> None:
    assert not topics.history_bar("1m", "X").startswith(topics.bars())


@pytest.mark.parametrize("bad", ["", "a b", ".X", "X.", "\tX"])
def test_bad_segments_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        topics.bar("1m", bad)


def test_commands_and_replies_are_addressed() -> None:
    assert topics.command("feeds", "backfill") == "cmd.feeds.backfill."
    assert topics.command("feeds", "backfill").startswith(topics.commands("feeds"))
    assert not topics.command("feedsx", "a").startswith(topics.commands("feeds"))
    assert topics.reply("tap-1") == "reply.tap-1."
