import pytest

from parley.store.objects import ObjectError, clean_key


def test_keys_cannot_escape_the_store():
    assert clean_key("//public/a/b.md") == "public/a/b.md"
    for bad in ("../etc/passwd", "public/../../x", "", "a\\b"):
        with pytest.raises(ObjectError):
            clean_key(bad)
