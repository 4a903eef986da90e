#!/usr/bin/python3
"""bpe_train_ref.py - an independent reference for `tunic train-tokenizer`.

Byte-level BPE training written the plain way (recount every pair after every
merge), so the C trainer's incremental bookkeeping is checked against it:

  * pre-tokenisation: the GPT-2 pattern (ByteLevel, use_regex true), each piece's
    UTF-8 bytes mapped to GPT-2's byte symbols;
  * ids: bytes 0..255 in byte order, then the special tokens, then one id per new
    token string in merge order;
  * each round: the adjacent pair with the highest count (each occurrence in each
    word, weighted by the word's count) is merged; ties go to the smallest
    (left id, right id); stop at the vocabulary size or when the best count is
    below min_frequency. A merge whose string already exists keeps that id.

usage: bpe_train_ref.py VOCAB_SIZE MIN_FREQ FILE...  (JSONL: every string value
       of every line is training text; other files: every line is text)
prints one merge per line ("left right", byte symbols) to stdout.
"""
import json
import sys

import regex

GPT2 = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
SPECIALS = ["<pad>", "<bos>", "<eos>", "<start_of_turn>", "<end_of_turn>"]


def byte_symbols():
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    out, n = {}, 0
    for b in range(256):
        if b in keep:
            out[b] = chr(b)
        else:
            out[b] = chr(256 + n)
            n += 1
    return out


def strings(v):
    if isinstance(v, str):
        yield v
    elif isinstance(v, list):
        for x in v:
            yield from strings(x)
    elif isinstance(v, dict):
        for x in v.values():
            yield from strings(x)


def texts(paths):
    for p in paths:
        with open(p, "rb") as f:  # lines split at b"\n" only ("\r\n" keeps its "\r")
            for raw in f:
                line = raw.decode("utf-8")
                if p.endswith(".jsonl"):
                    if line.strip():
                        yield from strings(json.loads(line))
                else:
                    yield line


def train(vocab_size, min_freq, paths):
    sym = byte_symbols()
    pat = regex.compile(GPT2)
    counts = {}
    for t in texts(paths):
        for piece in pat.findall(t):
            w = "".join(sym[b] for b in piece.encode("utf-8"))
            counts[w] = counts.get(w, 0) + 1
    tok2id = {sym[b]: b for b in range(256)}
    nvocab = 256 + len(SPECIALS)
    words = [([tok2id[c] for c in w], n) for w, n in counts.items()]
    id2tok = {i: s for s, i in tok2id.items()}
    merges = []
    while nvocab < vocab_size:
        pc = {}
        for ids, n in words:
            for a, b in zip(ids, ids[1:]):
                pc[(a, b)] = pc.get((a, b), 0) + n
        if not pc:
            break
        best = max(pc.items(), key=lambda kv: (kv[1], -kv[0][0], -kv[0][1]))
        (a, b), c = best
        if c < min_freq:
            break
        s = id2tok[a] + id2tok[b]
        if s in tok2id:
            nid = tok2id[s]
        else:
            nid = nvocab
            nvocab += 1
            tok2id[s] = nid
            id2tok[nid] = s
        merges.append((id2tok[a], id2tok[b]))
        for ids, _ in words:
            i = 0
            while i < len(ids) - 1:
                if ids[i] == a and ids[i + 1] == b:
                    ids[i:i + 2] = [nid]
                i += 1
    return merges


if __name__ == "__main__":
    for l, r in train(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]):
        print(l, r)
