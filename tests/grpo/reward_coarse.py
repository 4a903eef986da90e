#!/usr/bin/python3
"""A --reward-cmd process for the dynamic-sampling test: 1 when at least 30% of the completion's
characters are ASCII letters, else 0 (a two-valued reward, so some groups of random completions
have all-equal rewards and some do not)."""
import json
import sys

for line in sys.stdin:
    c = json.loads(line).get("completion", "")
    print(1 if sum(ch.isascii() and ch.isalpha() for ch in c) >= 0.3 * max(1, len(c)) else 0, flush=True)
