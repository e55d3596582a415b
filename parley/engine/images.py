"""Finding the images in a question: Markdown image links in the text (how ADP sends them,
and what the v2 face makes of `image` contents) and uploaded images in `file_infos`."""

from __future__ import annotations

import re
from typing import Any

_MARKDOWN_IMAGE = re.compile(r"!\[[^\]]*\]\(\s*<?([^\s)>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
IMAGE_TYPES = frozenset({"png", "jpg", "jpeg", "gif", "webp", "bmp"})


def image_urls(content: str, file_infos: list[dict[str, Any]]) -> list[str]:
    """The question's image URLs, in order, each once. A file info names an image when it
    has no parsed document (`doc_id`) and its type or URL is an image's."""
    urls = [m.group(1) for m in _MARKDOWN_IMAGE.finditer(content)]
    for info in file_infos:
        if info.get("doc_id"):
            continue
        url = str(info.get("file_url") or "")
        kind = str(info.get("file_type") or "").lower().removeprefix("image/")
        suffix = url.rsplit("?", 1)[0].rsplit(".", 1)[-1].lower()
        if url and (kind in IMAGE_TYPES or suffix in IMAGE_TYPES):
            urls.append(url)
    return list(dict.fromkeys(urls))
