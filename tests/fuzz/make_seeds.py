#!/usr/bin/env python3
"""make_seeds.py - writes the seed corpora of the libFuzzer harnesses (tests/fuzz/corpus/NAME/)
from the format descriptions, standard library only. Run once when a harness is added; the
corpora are committed (plus whatever fuzzing found worth keeping, and regression inputs).
Usage: make_seeds.py [TOKENIZER_DIR...]  (extra tokenizer directories become tokenizer seeds).
Not for: running the fuzzers (scripts/fuzz.sh)."""
import json, os, struct, sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus")

def put(name, fname, data):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, fname), "wb") as f:
        f.write(data)

def st(tensors, meta=None, pad=True):
    """safetensors bytes: tensors = [(name, dtype, shape, raw bytes)]"""
    hdr, off, blob = {}, 0, b""
    if meta is not None:
        hdr["__metadata__"] = meta
    for name, dt, shape, raw in tensors:
        hdr[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(raw)]}
        off += len(raw)
        blob += raw
    h = json.dumps(hdr).encode()
    if pad:
        h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + blob

f32 = lambda *v: struct.pack("<%df" % len(v), *v)

# ---- safetensors
put("safetensors", "f32_bf16_meta", st([("a.weight", "F32", [2, 2], f32(1, 2, 3, 4)),
                                         ("b", "BF16", [3], b"\x80\x3f" * 3)], {"format": "pt"}))
put("safetensors", "empty_header", st([]))
put("safetensors", "scalar_and_empty", st([("s", "F64", [], struct.pack("<d", 2.5)), ("e", "I32", [0, 4], b"")]))
put("safetensors", "all_dtypes", st([(n, d, [1], b"\x01" * k) for n, d, k in
    [("f16", "F16", 2), ("i64", "I64", 8), ("i16", "I16", 2), ("i8", "I8", 1), ("u8", "U8", 1), ("bool", "BOOL", 1),
     ("u16", "U16", 2), ("u32", "U32", 4), ("u64", "U64", 8), ("e4", "F8_E4M3", 1), ("e5", "F8_E5M2", 1)]]))
put("safetensors", "truncated", st([("a", "F32", [4], f32(1, 2, 3, 4))])[:-5])
put("safetensors", "overlap", struct.pack("<Q", 104) + json.dumps(
    {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
     "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}).encode().ljust(104) + b"\0" * 12)

# ---- sharded checkpoint: index.json NUL b.safetensors (a.safetensors is fixed in the harness:
# x.weight F32 [2,3], y.bias F32 [2])
b_shard = st([("z.weight", "F32", [2], f32(5, 6))])
idx = {"metadata": {"total_size": 40}, "weight_map": {"x.weight": "a.safetensors", "y.bias": "a.safetensors",
                                                      "z.weight": "b.safetensors"}}
put("st_index", "two_shards", json.dumps(idx, indent=2).encode() + b"\0" + b_shard)
put("st_index", "one_shard", json.dumps({"weight_map": {"x.weight": "a.safetensors", "y.bias": "a.safetensors"}}))
put("st_index", "escape", json.dumps({"weight_map": {"x.weight": "../a.safetensors"}}))

# ---- config.json (byte 0 even) / generation_config.json (odd)
llama = {"model_type": "llama", "vocab_size": 300, "hidden_size": 16, "num_hidden_layers": 2,
         "num_attention_heads": 2, "num_key_value_heads": 1, "intermediate_size": 32, "rms_norm_eps": 1e-5,
         "rope_theta": 10000.0, "tie_word_embeddings": False, "torch_dtype": "bfloat16", "bos_token_id": 1,
         "eos_token_id": [2, 3], "max_position_embeddings": 128}
put("config", "llama", b"\0" + json.dumps(llama).encode())
put("config", "llama3_rope", b"\0" + json.dumps(dict(llama, rope_scaling={
    "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
    "original_max_position_embeddings": 64})).encode())
put("config", "linear_rope", b"\0" + json.dumps(dict(llama, rope_scaling={"type": "linear", "factor": 2.0})).encode())
put("config", "qwen2", b"\0" + json.dumps(dict(llama, model_type="qwen2", tie_word_embeddings=True)).encode())
put("config", "qwen3", b"\0" + json.dumps(dict(llama, model_type="qwen3", head_dim=16)).encode())
put("config", "gemma3", b"\0" + json.dumps(dict(llama, model_type="gemma3_text", head_dim=8, sliding_window=8,
    layer_types=["sliding_attention", "full_attention"], query_pre_attn_scalar=8, final_logit_softcapping=30.0,
    hidden_activation="gelu_pytorch_tanh", rope_local_base_freq=10000.0)).encode())
put("config", "bnb", b"\0" + json.dumps(dict(llama, quantization_config={
    "quant_method": "bitsandbytes", "load_in_4bit": True, "bnb_4bit_quant_type": "nf4"})).encode())
put("config", "generation", b"\1" + json.dumps({"eos_token_id": [1, 2, 3], "bos_token_id": 1}).encode())

# ---- tokenizer: tokenizer.json NUL tokenizer_config.json NUL text
def byte_vocab():
    bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b); cs.append(256 + n); n += 1
    return {chr(c): b for b, c in zip(bs, cs)}

vocab = byte_vocab()
merges = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("i", "n"), ("Ġ", "a")]
for i, (a, b) in enumerate(merges):
    vocab[a + b] = 256 + 4 + i
added = [{"id": 256 + i, "content": c, "single_word": False, "lstrip": False, "rstrip": False,
          "normalized": False, "special": True} for i, c in enumerate(["<pad>", "<bos>", "<eos>", "<unk>"])]
tok = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
       "normalizer": {"type": "Sequence", "normalizers": [{"type": "NFC"}, {"type": "Replace",
                      "pattern": {"String": "\t"}, "content": " "}]},
       "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
       "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<bos>", "type_id": 0}},
                          {"Sequence": {"id": "A", "type_id": 0}}], "pair": [],
                          "special_tokens": {"<bos>": {"id": "<bos>", "ids": [257], "tokens": ["<bos>"]}}},
       "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
       "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                 "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                 "vocab": vocab, "merges": [a + " " + b for a, b in merges]}}
tcfg = {"bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>", "add_bos_token": True,
        "chat_template": "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
                         "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"}
text = "The thin cat\tin the hat: 1234 ünïcödé <bos> 😀".encode()
put("tokenizer", "bytelevel", json.dumps(tok).encode() + b"\0" + json.dumps(tcfg).encode() + b"\0" + text)
# SentencePiece-like: Metaspace + byte_fallback + pair merges
sp_vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
for i in range(256):
    sp_vocab["<0x%02X>" % i] = 3 + i
for w in ["▁", "t", "h", "e", "▁t", "he", "▁the", "a", "c", "▁c", "at", "▁cat"]:
    sp_vocab.setdefault(w, len(sp_vocab))
sp = {"version": "1.0", "added_tokens": [{"id": 0, "content": "<unk>", "special": True}, {"id": 1, "content": "<s>",
      "special": True, "lstrip": True}, {"id": 2, "content": "</s>", "special": True, "rstrip": True}],
      "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"},
                     {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}, {"type": "Lowercase"}]},
      "pre_tokenizer": None,
      "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                         {"Sequence": {"id": "A", "type_id": 0}}], "pair": [],
                         "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
      "decoder": {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
                  {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
      "model": {"type": "BPE", "unk_token": "<unk>", "fuse_unk": True, "byte_fallback": True,
                "vocab": sp_vocab, "merges": [["▁", "t"], ["h", "e"], ["▁t", "he"], ["a", "t"], ["▁", "c"], ["▁c", "at"]]}}
put("tokenizer", "metaspace", json.dumps(sp).encode() + b"\0" + json.dumps({"bos_token": "<s>", "eos_token": "</s>"}).encode()
    + b"\0" + "The Cat sat ÀÉ 😀".encode())
split = dict(tok, normalizer={"type": "NFKC"}, pre_tokenizer={"type": "Sequence", "pretokenizers": [
    {"type": "Split", "pattern": {"Regex": "\\p{N}{1,3}| ?\\p{L}+|\\s+"}, "behavior": "Isolated", "invert": False},
    {"type": "Digits", "individual_digits": True}, {"type": "ByteLevel", "add_prefix_space": False, "use_regex": False}]})
put("tokenizer", "split_digits", json.dumps(split).encode() + b"\0{}\0" + b"abc 12345 def\r\n")
put("tokenizer", "ws_punct", json.dumps(dict(tok, normalizer={"type": "StripAccents"}, pre_tokenizer={
    "type": "Sequence", "pretokenizers": [{"type": "Whitespace"}, {"type": "Punctuation", "behavior": "Isolated"},
    {"type": "WhitespaceSplit"}]})).encode())
for k, d in enumerate(sys.argv[1:]):
    t = open(os.path.join(d, "tokenizer.json"), "rb").read()
    c = open(os.path.join(d, "tokenizer_config.json"), "rb").read()
    put("tokenizer", "dir%d" % k, t + b"\0" + c + b"\0" + text)

# ---- JSONL datasets (first byte: options)
sft = [{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                     {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "2+2?"},
                     {"role": "assistant", "content": "4"}]},
       {"prompt": "Q: 1+1", "completion": " 2"}, {"prompt": "x", "response": "y"}, {"text": "plain text"},
       {"prompt": [{"role": "user", "content": "a"}], "completion": [{"role": "assistant", "content": "b"}]},
       {"prompts": "<start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\nhello<end_of_turn>"}]
for opt in (0, 2, 4):
    put("sft_data", "mixed%d" % opt, bytes([opt]) + "\n".join(json.dumps(x) for x in sft).encode() + b"\n")
put("sft_data", "bad_line", b"\0" + b'{"text": "a"}\n{"text": 5}\n')
pref = [{"prompt": "2+2?", "chosen": "4", "rejected": "5"},
        {"prompt": [{"role": "user", "content": "hi"}], "chosen": [{"role": "assistant", "content": "hello"}],
         "rejected": [{"role": "assistant", "content": "go away"}]},
        {"chosen": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "good"}],
         "rejected": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "bad"}]}]
for opt in (0, 0x15, 0x0a):
    put("pref_data", "mixed%d" % opt, bytes([opt]) + "\n".join(json.dumps(x) for x in pref).encode())
prompts = [{"id": 1, "prompt": "What is 2+3?", "answer": "5", "category": "add"},
           {"id": "b", "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "6*7?"}],
            "expected_answer": 42},
           {"question": "q?", "prompt": "p", "answer": 1.5}]
for opt in (0, 0x07, 0x1c, 0x0b):
    put("prompts", "mixed%d" % opt, bytes([opt]) + "\n".join(json.dumps(x) for x in prompts).encode() + b"\n")
results = [{"id": 1, "correct": True, "category": "add", "partial": True, "format_ok": True, "error": "correct",
            "extracted": "5", "expected_answer": "5"},
           {"id": "x", "correct": 0, "error": "wrong_number", "extracted": "3", "expected_answer": "4"},
           {"id": 2, "correct": False, "error": "no_answer"}]
put("eval_results", "results", "\n".join(json.dumps(x) for x in results) + "\n")
put("eval_results", "dup", '{"id": 1, "correct": true}\n{"id": 1, "correct": false}\n')

# ---- YAML run config / rubric
put("runcfg", "basic", "model: /m\nsteps: 100\nlr: 3e-4\nbf16: true\nseed: 7\nreward: [format, answer]\n"
    "optim:\n  beta: 0.9\neval:\n  tol: 0.25\nbatch_size: 8\nout: null\n")
put("runcfg", "flow", "{model: m, steps: 5, optim: {beta: 1e-3}}\n")
put("runcfg", "anchors", "a: &x [1, 2]\nb: *x\n")
put("runcfg", "bad_type", "steps: many\n")
put("rubric", "list", '- must_contain: "therefore"\n  weight: 2\n- must_not_contain: ["sorry", "I cannot"]\n'
    '  ignore_case: true\n- min_words: 2\n- max_words: 300\n- regex: "\\\\d+\\\\s*$"\n  name: ends with a number\n')
put("rubric", "checks", "checks:\n  - must_contain: [a, b]\n    weight: -1\n  - regex: '(?i)answer'\n")
put("rubric", "laughs", "a: &a [x, x]\nb: &b [*a, *a]\nc: &c [*b, *b]\nchecks:\n  - must_contain: *c\n")

# ---- extraction + rewards: completion NUL reference NUL spec
ex = [("<reasoning>2 + 2 = 4</reasoning>\n<answer>4</answer>", "4", "format_exact:1,format_approx:0.5,answer:2,numeric:1,length:0.1"),
      ("so the answer is \\boxed{\\frac{3}{4}}", "0.75", "answer"),
      ("#### 1,234.5", "1234.5", "numeric:1"),
      ("The answer: $-12%", "-12", "rubric:1,answer"),
      ("1 1/2 apples, 18 dollars", "1.5", "length")]
for i, (c, r, s) in enumerate(ex):
    put("extract", "e%d" % i, c.encode() + b"\0" + r.encode() + b"\0" + s.encode())

# ---- PEFT adapter_config.json (the harness has a fixed rank-2 q/v adapter for 2 layers)
acfg = {"peft_type": "LORA", "r": 2, "lora_alpha": 4, "lora_dropout": 0.0, "target_modules": ["q_proj", "v_proj"],
        "bias": "none", "use_rslora": False, "base_model_name_or_path": "tiny", "task_type": "CAUSAL_LM"}
put("adapter", "basic", json.dumps(acfg))
put("adapter", "patterns", json.dumps(dict(acfg, rank_pattern={"q_proj": 2}, alpha_pattern={"v_proj": 8},
                                           layers_to_transform=[0, 1], use_rslora=True)))
put("adapter", "regex", json.dumps(dict(acfg, target_modules=".*\\.(q|v)_proj", exclude_modules=["nothing"])))
put("adapter", "own_tensors", json.dumps(dict(acfg, target_modules=["q_proj"], layers_to_transform=0)).encode() + b"\0" +
    st([("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", "F32", [2, 16], f32(*[0.5] * 32)),
        ("base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight", "BF16", [16, 2], b"\x80\x3f" * 32)]))
# ---- the calculator tool: one expression
for i, e in enumerate(["2+3*4", "(1.5 - -2)^3 / 7", "123456789012345678901234567890 * 987654321", "2^-10 % 3",
                       "1e3 ** 2 - 0.001", "-(-(4))", "10/3", "2 +", "1/0", "9^9^9", "((((1))))", "7 % -2.5", "1_000 * 3"]):
    put("calculator", "c%d" % i, e)
print("seeds written to", OUT)
