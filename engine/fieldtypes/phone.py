"""phone: a telephone number: digits with optional +, spaces, dashes, dots, brackets, extension."""

import re

from engine.fieldtypes.textual import TextLike


class PhoneType(TextLike):
    name = "phone"
    widget = "tel"
    default_max_length = 40
    # At least five digits; may start with + or a bracketed area code such as (021).
    pattern = re.compile(r"(?=(?:\D*\d){5})\+?[0-9(][0-9 ()\-.]{3,30}([ ]?(ext|x|转)[ ]?[0-9]{1,6})?", re.IGNORECASE)
    pattern_error = "not_a_phone"
