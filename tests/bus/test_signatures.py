"""The signature ledger: a signature serves the call it was first accepted for, until it is forgotten."""

from parley.bus.signatures import LocalSignatureLedger


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_exclusive_call_must_be_the_first_of_its_signature():
    ledger = LocalSignatureLedger()
    assert ledger.claim("sig-1", b"DescribeReleaseInfo", 600, exclusive=False)
    assert not ledger.claim("sig-1", b"CreateRelease", 600, exclusive=True)
    assert ledger.claim("sig-1", b"ListQA", 600, exclusive=False)  # reads share a signature
    assert ledger.claim("sig-2", b"CreateRelease", 600, exclusive=True)
    assert ledger.claim("sig-2", b"CreateRelease", 600, exclusive=True)  # the same call again: a retry
    assert not ledger.claim("sig-2", b"DeleteDoc", 600, exclusive=True)
    assert ledger.claim("sig-2", b"DescribeReleaseInfo", 600, exclusive=False)


def test_signatures_are_forgotten_once_past_their_age():
    clock = Clock()
    ledger = LocalSignatureLedger(clock)
    for n in range(100):
        assert ledger.claim(f"sig-{n}", b"call", 600, exclusive=True)
        clock.now += 1
    assert not ledger.claim("sig-99", b"other", 600, exclusive=True)
    clock.now += 600
    assert ledger.claim("sig-new", b"call", 600, exclusive=True)
    assert len(ledger) == 1  # every older binding was dropped on the way
