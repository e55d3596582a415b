"""Which images a question carries, and which addresses and hosts an image may come from."""

from __future__ import annotations

import pytest

from parley.config import ImageSettings
from parley.engine.images import image_urls
from parley.knowledge.images import ImageError, ImageFetcher, PublicOnlyResolver, host_allowed, image_type, public_address


def test_images_are_found_in_markdown_links_and_file_infos():
    content = 'Look ![a cat](https://x.example/cat.png) and ![](<https://x.example/b c.jpg>) ![t](https://x.example/d.gif "title")'
    infos = [
        {"file_url": "https://u.example/p.webp?sig=1", "file_type": "", "doc_id": ""},
        {"file_url": "https://u.example/scan", "file_type": "image/png", "doc_id": ""},
        {"file_url": "https://u.example/parsed.png", "file_type": "png", "doc_id": "42"},  # a parsed document
        {"file_url": "https://u.example/notes.md", "file_type": "md", "doc_id": ""},
        {"file_url": "https://x.example/cat.png", "file_type": "png", "doc_id": ""},  # named twice: once
    ]
    assert image_urls(content, infos) == [
        "https://x.example/cat.png", "https://x.example/d.gif", "https://u.example/p.webp?sig=1", "https://u.example/scan",
    ]
    assert image_urls("a [link](https://x.example/a.png) is not an image", []) == []


@pytest.mark.parametrize(
    "address, public",
    [("8.8.8.8", True), ("2606:4700:4700::1111", True), ("127.0.0.1", False), ("10.1.2.3", False),
     ("192.168.0.9", False), ("172.16.0.1", False), ("169.254.169.254", False), ("::1", False), ("fe80::1%eth0", False),
     ("fd00::1", False), ("::ffff:127.0.0.1", False), ("0.0.0.0", False), ("100.64.0.1", False), ("224.0.0.1", False)],
)
def test_only_public_addresses_are_fetched_from(address, public):
    assert public_address(address) is public


def test_allowed_hosts_match_exactly_or_by_subdomain_pattern():
    allowed = ["img.example.com", "*.cdn.example.net"]
    assert host_allowed("IMG.example.com.", allowed) and host_allowed("a.b.cdn.example.net", allowed)
    assert not host_allowed("example.com", allowed) and not host_allowed("cdn.example.net", allowed)
    assert not host_allowed("evilcdn.example.net", allowed) and not host_allowed("img.example.com.evil", allowed)


def test_image_types_are_known_by_their_bytes():
    assert image_type(b"\x89PNG\r\n\x1a\n....") == "image/png"
    assert image_type(b"\xff\xd8\xff\xe0") == "image/jpeg"
    assert image_type(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "image/webp"
    assert image_type(b"<svg xmlns=...>") is None


async def test_a_name_resolving_to_a_private_address_is_refused_before_connecting():
    with pytest.raises(OSError, match="not a public address"):
        await PublicOnlyResolver().resolve("localhost", 80)


@pytest.mark.parametrize(
    "url, says",
    [("ftp://img.example.com/a.png", "http or https"), ("https://other.example.org/a.png", "not an allowed host"),
     ("http://127.0.0.1/a.png", "not an allowed host"), ("http://[::1]/a.png", "not a public address")],
)
async def test_external_urls_are_refused_unless_allowed_and_public(url, says):
    fetcher = ImageFetcher(ImageSettings(allowed_hosts=["img.example.com", "::1"]), None, "bucket")
    with pytest.raises(ImageError, match=says):
        await fetcher.fetch(1, url)


async def test_too_many_images_are_refused():
    fetcher = ImageFetcher(ImageSettings(max_images=2), None, "bucket")
    with pytest.raises(ImageError, match="at most 2"):
        await fetcher.fetch_all(1, ["https://a/1.png", "https://a/2.png", "https://a/3.png"])
