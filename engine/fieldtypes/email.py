"""email: an email address, stored lower-cased."""

import re

from engine.fieldtypes.textual import TextLike


class EmailType(TextLike):
    name = "email"
    widget = "email"
    default_max_length = 254
    pattern = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
    pattern_error = "not_an_email"

    def normalize(self, text: str) -> str:
        return text.lower()
