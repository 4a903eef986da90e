#!/usr/bin/python3
"""A --reward-cmd process for the GRPO tests: for each JSON line {prompt, completion, ...} on
stdin, prints the fraction of the completion's characters that are ASCII letters (a reward that
varies between random completions, so group advantages are not all zero)."""
import json
import sys

for line in sys.stdin:
    c = json.loads(line).get("completion", "")
    print(sum(ch.isascii() and ch.isalpha() for ch in c) / max(1, len(c)), flush=True)
