"""Mask personal data in text before it is logged: e-mail addresses, phone and card numbers.

Deliberately simple patterns that err towards masking: a log line is no place for a customer's
card number, and a masked order number costs little. Card numbers must pass the Luhn check;
dates and times stay readable; any other run of 7 or more digits is masked as a phone number.

>>> redact("Mail jo@example.com or call +44 20 7946 0958, card 4111 1111 1111 1111")
'Mail [EMAIL] or call [PHONE], card [CARD]'
"""

from __future__ import annotations

import re

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_CARD = re.compile(r"\b(?:\d[ -]?){12,18}\d\b")
_DATE = re.compile(r"\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{4}")
_PHONE = re.compile(r"(?<![\w])\+?\(?\d{1,4}\)?(?:[ .-]?\(?\d{2,4}\)?){2,5}(?![\w])")


def _luhn_ok(number: str) -> bool:
    digits = [int(d) for d in number if d.isdigit()]
    total = 0
    for position, digit in enumerate(reversed(digits)):
        if position % 2 == 1:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def redact(text: str) -> str:
    text = _EMAIL.sub("[EMAIL]", text)
    text = _CARD.sub(lambda m: "[CARD]" if _luhn_ok(m.group()) else m.group(), text)
    return _PHONE.sub(lambda m: "[PHONE]" if _phone_like(m.group()) else m.group(), text)


def _phone_like(candidate: str) -> bool:
    # A date (and the time after it) also looks like digits in groups: leave it readable.
    return sum(c.isdigit() for c in candidate) >= 7 and not _DATE.search(candidate)
