from parley.bus.tokens import LocalTokenStore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_token_is_redeemed_once():
    store = LocalTokenStore()
    token = await store.issue({"app_key": "k"}, ttl=60)
    assert await store.redeem(token) == {"app_key": "k"}
    assert await store.redeem(token) is None
    assert await store.redeem("unknown") is None


async def test_a_token_expires_after_its_ttl():
    clock = Clock()
    store = LocalTokenStore(clock)
    token = await store.issue({"n": 1}, ttl=60)
    clock.now += 61
    assert await store.redeem(token) is None


async def test_expired_tokens_do_not_pile_up():
    clock = Clock()
    store = LocalTokenStore(clock)
    for n in range(100):
        await store.issue({"n": n}, ttl=60)
    clock.now += 61
    live = await store.issue({"n": "live"}, ttl=60)
    assert len(store._tokens) == 1
    assert await store.redeem(live) == {"n": "live"}
