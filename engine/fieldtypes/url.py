"""url: an http(s) web address; a bare domain gets https:// prepended."""

import re

from engine.fieldtypes.textual import TextLike


class UrlType(TextLike):
    name = "url"
    widget = "url"
    default_max_length = 500
    pattern = re.compile(r"https?://[^\s/$.?#][^\s]*", re.IGNORECASE)
    pattern_error = "not_a_url"

    def normalize(self, text: str) -> str:
        if text and "://" not in text and re.match(r"[\w-]+(\.[\w-]+)+", text):
            return "https://" + text
        return text
