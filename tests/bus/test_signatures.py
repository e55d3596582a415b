"""The signature ledger: a call that changes something needs a signature of its own, unless
it comes over the connection that first used the signature."""

from parley.bus.signatures import LocalSignatureLedger


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_call_that_changes_something_needs_its_own_signature_from_another_connection():
    ledger = LocalSignatureLedger()
    assert ledger.claim("sig-1", b"DescribeReleaseInfo", 600, exclusive=False, origin="10.0.0.1:5000")
    assert not ledger.claim("sig-1", b"CreateRelease", 600, exclusive=True, origin="10.0.0.9:6000")  # a replay
    assert not ledger.claim("sig-1", b"CreateRelease", 600, exclusive=True, origin=None)
    assert ledger.claim("sig-1", b"ListQA", 600, exclusive=False, origin="10.0.0.9:6000")  # reads share a signature
    assert ledger.claim("sig-2", b"CreateRelease", 600, exclusive=True, origin="10.0.0.1:5000")
    assert ledger.claim("sig-2", b"CreateRelease", 600, exclusive=True, origin="10.0.0.1:5001")  # a retry
    assert not ledger.claim("sig-2", b"DeleteDoc", 600, exclusive=True, origin="10.0.0.9:6000")


def test_the_signers_own_connection_may_reuse_a_signature():
    # The SDK signs a read and a write with one body in one second alike, and sends both on its connection.
    ledger = LocalSignatureLedger()
    assert ledger.claim("sig-1", b"ListAttributeLabel", 600, exclusive=False, origin="10.0.0.1:5000")
    assert ledger.claim("sig-1", b"DeleteAttributeLabel", 600, exclusive=True, origin="10.0.0.1:5000")


def test_signatures_are_forgotten_once_past_their_age():
    clock = Clock()
    ledger = LocalSignatureLedger(clock)
    for n in range(100):
        assert ledger.claim(f"sig-{n}", b"call", 600, exclusive=True, origin="a")
        clock.now += 1
    assert not ledger.claim("sig-99", b"other", 600, exclusive=True, origin="b")
    clock.now += 600
    assert ledger.claim("sig-new", b"call", 600, exclusive=True, origin="a")
    assert len(ledger) == 1  # every older binding was dropped on the way
