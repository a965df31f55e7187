"""Command-line types of the bench scripts: argparse answers a bad value in one sentence
(`binwrn-bench --steps 0` was a traceback from a timing with no steps)."""

from __future__ import annotations

import argparse


def whole(low: int = 1, high: int = 1_000_000):
    """A whole number from `low` to `high`."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text} is not a whole number from {low} to "
                                             f"{high:,}")
        return value
    return parse


def picture_size(text: str) -> str:
    """WIDTHxHEIGHT in pixels, each from 8 to 8192."""
    width, _, height = text.partition("x")
    if not (width.isdigit() and height.isdigit()
            and 8 <= int(width) <= 8192 and 8 <= int(height) <= 8192):
        raise argparse.ArgumentTypeError(f"{text} is not WIDTHxHEIGHT with each from 8 to "
                                         "8192, e.g. 500x375")
    return text
