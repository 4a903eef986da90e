// corpus.mjs - the tokenizer test corpus, generated deterministically from seed text written
// for tunic (nothing downloaded): English prose, source code (tunic's own C sources plus
// snippets), Chinese, Japanese, Korean, Arabic, Hindi, Russian, emoji and ZWJ sequences,
// long digit runs, whitespace runs, tabs, CRLF, Unicode normalization cases and strings that
// look like special tokens. makeCorpus(srcRoot) returns [{name, text}], > 100 KB in total.
import fs from "fs";
import path from "path";

// small deterministic PRNG (mulberry32)
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ENGLISH = [
  "The lighthouse keeper had not spoken to anyone in eleven days, and when the supply boat finally rounded the point he found that he had forgotten how to begin a sentence.",
  "She counted the steps twice: once going up, when the wind tore at her coat, and once coming down, when it had dropped to nothing and the sea lay flat as pewter.",
  "It's not that they didn't care; they'd simply never been asked, and nobody'll tell you what you're supposed to do when you've been left out of the plan.",
  "Fine-tuning a language model is mostly bookkeeping: which tokens are the prompt, which are the answer, and which of them the loss should ever see.",
  "In 1887 the railway reached the valley, and within a decade the orchards had given way to warehouses, sidings and a hotel that nobody could quite afford.",
  "\"Are you sure?\" he asked. \"Quite sure,\" said the clerk, sliding the ledger across the counter. \"Page forty-two, third line from the bottom.\"",
  "Rain again. The gutters sang; the cat refused the door; the kettle, as always, took exactly as long as the argument it interrupted.",
  "Most bugs are not clever. They are ordinary mistakes that survived because the test that would have caught them was never written.",
  "What's the difference between a map and a territory? About forty years of surveying, three lawsuits, and one very stubborn goat.",
  "The committee reconvened at 9:30 a.m. on Tuesday, March 3rd, and adjourned—without a vote—at 4:15 p.m., having ordered sandwiches twice.",
  "He wrote in pencil because ink seemed too certain, and he crossed things out with a single line so that he could still read what he had been wrong about.",
  "Caf\u00e9 owners along the harbour say the summer was the busiest since 2019, although the na\u00efve optimism of June had faded by the end of August.",
  "Measure twice, cut once; then measure again, because the first two measurements were taken by someone who was in a hurry.",
  "A good benchmark states what it measures, on which machine, with which inputs, and how many times it was run before anyone believed the number.",
  "I'm told the bridge was designed for horses; it has carried trucks for sixty years and complains about it only in winter.",
  "The recipe called for 250 g of flour, 3 eggs, a pinch (about 0.5 g) of salt and \"enough patience to let the dough rest for an hour\".",
];

const CODE_SNIPPETS = [
  `def fibonacci(n: int) -> list[int]:\n    """Return the first n Fibonacci numbers."""\n    a, b = 0, 1\n    out = []\n    for _ in range(n):\n        out.append(a)\n        a, b = b, a + b\n    return out\n\n\nif __name__ == "__main__":\n    print(fibonacci(20))\n`,
  `// debounce returns a function that delays calls until \`ms\` have passed\nexport function debounce(fn, ms = 250) {\n  let timer = null;\n  return (...args) => {\n    clearTimeout(timer);\n    timer = setTimeout(() => fn.apply(this, args), ms);\n  };\n}\n`,
  `{\n  "name": "example",\n  "version": "1.2.3",\n  "scripts": { "test": "node --test", "build": "tsc -p ." },\n  "dependencies": { "left-pad": "^1.3.0" },\n  "nested": [1, 2.5, -3e10, true, false, null, "\\u00e9\\n"]\n}\n`,
  `<!DOCTYPE html>\n<html lang="en">\n<head><meta charset="utf-8"><title>Test &amp; check</title></head>\n<body>\n  <div class="card" id="c-1" data-x='1'>\n    <p>Hello, <b>world</b>!</p>\n  </div>\n</body>\n</html>\n`,
  `SELECT u.id, u.name, COUNT(o.id) AS orders\nFROM users u\nLEFT JOIN orders o ON o.user_id = u.id\nWHERE u.created_at >= '2024-01-01'\nGROUP BY u.id, u.name\nHAVING COUNT(o.id) > 3\nORDER BY orders DESC;\n`,
  `#!/bin/sh\nset -eu\nfor f in "$@"; do\n\tif [ -f "$f" ]; then\n\t\twc -l "$f" | awk '{ print $1 }'\n\telse\n\t\techo "missing: $f" >&2\n\tfi\ndone\n`,
  `fn main() {\n    let v: Vec<u32> = (1..=10).filter(|x| x % 2 == 0).collect();\n    println!("{:?} {}", v, v.iter().sum::<u32>());\n    let s = String::from("héllo");\n    assert_eq!(s.chars().count(), 5);\n}\n`,
  "# Title\n\nSome *emphasis*, some **strong**, a [link](https://example.com/a_b?c=d&e=f#g) and `inline code`.\n\n| col | val |\n|-----|----:|\n| a   |  1.0|\n| b   | 22.5|\n\n```c\nint main(void) { return 0; }\n```\n",
];

const CHINESE = [
  "今天天气很好，我们去公园散步吧。",
  "机器学习模型需要大量的数据来训练，但数据的质量比数量更重要。",
  "他在北京工作了十年，去年才搬到上海。",
  "这本书讲述了一个关于勇气和友谊的故事，深受读者喜爱。",
  "请把文件保存在“项目”文件夹里，然后告诉我结果。",
  "春眠不觉晓，处处闻啼鸟。夜来风雨声，花落知多少。",
];
const JAPANESE = [
  "今日はとても良い天気ですね。散歩に行きましょう。",
  "このプログラムは、テキストをトークンに分割します。",
  "東京駅から新幹線で大阪まで約二時間半かかります。",
  "猫が窓の外をじっと見ている。何を考えているのだろう？",
  "カタカナ、ひらがな、漢字が混ざった文章は難しいです。ｶﾀｶﾅの半角もあります。",
];
const KOREAN = [
  "안녕하세요, 만나서 반갑습니다.",
  "오늘은 비가 와서 집에서 책을 읽었어요.",
  "이 모델은 한국어 문장도 잘 처리할 수 있습니다.",
  "서울에서 부산까지 기차로 세 시간 정도 걸립니다.",
];
const ARABIC = [
  "مرحبا بك في عالم الذكاء الاصطناعي.",
  "اللغة العربية تُكتب من اليمين إلى اليسار.",
  "ذهبتُ إلى المكتبة أمس واشتريتُ ثلاثة كتب جديدة.",
  "الأرقام العربية: ٠١٢٣٤٥٦٧٨٩ والأرقام الغربية: 0123456789.",
];
const HINDI = [
  "नमस्ते, आप कैसे हैं?",
  "भारत एक विशाल और विविधतापूर्ण देश है।",
  "मशीन लर्निंग मॉडल को प्रशिक्षित करने के लिए डेटा की आवश्यकता होती है।",
  "हिंदी अंक: ०१२३४५६७८९।",
];
const RUSSIAN = [
  "Привет, как дела? Всё хорошо, спасибо.",
  "Москва — столица России, крупнейший город страны.",
  "Съешь же ещё этих мягких французских булок, да выпей чаю.",
  "В 2023 году было опубликовано более 1 500 000 научных статей.",
];
const OTHER = [
  "Ελληνικά: Καλημέρα κόσμε! Η γλώσσα έχει τόνους: ά έ ή ί ό ύ ώ.",
  "עברית: שלום עולם, מה שלומך?",
  "ไทย: สวัสดีครับ ยินดีที่ได้รู้จัก",
  "Tiếng Việt: Xin chào, tôi là một mô hình ngôn ngữ.",
  "Deutsch: Größenordnung, Straße, Übermaß — ß ẞ äöü ÄÖÜ.",
  "Español: ¿Dónde está la biblioteca? ¡Allí!",
  "Türkçe: İstanbul'da ılık bir gün; IĞDIR, ığdır.",
];

// Unicode normalization and compatibility cases (NFC is applied by Qwen3)
const UNICODE_CASES = [
  "e\u0301 vs \u00e9; A\u030a vs \u00c5; o\u0308\u0304 vs \u022b",
  "\u1100\u1161\u11a8 jamo vs \u1100\u1161 + \u11a8 (Hangul L V T)",
  "compatibility: \ufb01 \ufb02 \u2460 \u2461 \uff21\uff22\uff23 \u00bd \u2126 \u212b \u2000 \u3000",
  "marks: a\u0323\u0301 a\u0301\u0323 \u0915\u093c \u0928\u093c",
  "zero width: a\u200bb c\u200cd e\u200df \ufeffBOM \u2060joiner",
  "combining at start: \u0301\u0302 alone",
];

function emoji(r) {
  const simple = ["😀", "😂", "🥲", "🤖", "🚀", "🌍", "🍕", "🎉", "❤️", "👍", "🔥", "✨", "🙏", "🐍", "🦀"];
  const zwj = [
    "👨\u200d👩\u200d👧\u200d👦", "👩\u200d💻", "🧑\u200d🚀", "🏳️\u200d🌈", "👁️\u200d🗨️", "🧑🏽\u200d⚕️",
    "👩🏿\u200d🤝\u200d👨🏻", "❤️\u200d🔥", "🐻\u200d❄️",
  ];
  const tones = ["👋🏻", "👋🏼", "👋🏽", "👋🏾", "👋🏿"];
  const flags = ["🇯🇵", "🇫🇷", "🇧🇷", "🇺🇸", "🇮🇳", "🏴󠁧󠁢󠁳󠁣󠁴󠁿"];
  const keycaps = ["1️⃣", "#️⃣", "*️⃣"];
  const all = [simple, zwj, tones, flags, keycaps];
  let s = "";
  for (let i = 0; i < 60; i++) {
    const g = all[Math.floor(r() * all.length)];
    s += g[Math.floor(r() * g.length)];
    const sep = r();
    s += sep < 0.5 ? "" : sep < 0.8 ? " " : sep < 0.9 ? " and " : "\n";
  }
  return s;
}

function digits(r) {
  let s = "";
  for (let i = 0; i < 40; i++) {
    const len = 1 + Math.floor(r() * (r() < 0.2 ? 80 : 12));
    let d = "";
    for (let k = 0; k < len; k++) d += String.fromCharCode(48 + Math.floor(r() * 10));
    const form = r();
    if (form < 0.5) s += d;
    else if (form < 0.65) s += d + "." + String(Math.floor(r() * 1000));
    else if (form < 0.8) s += Number(d.slice(0, 9) || "0").toLocaleString("en-US");
    else if (form < 0.9) s += "-" + d + "e" + Math.floor(r() * 30);
    else s += "0x" + Math.floor(r() * 0xffffffff).toString(16);
    s += r() < 0.7 ? " " : r() < 0.5 ? ", " : "\n";
  }
  return s + "3.14159265358979323846264338327950288419716939937510 " + "9".repeat(300) + "\n";
}

function whitespace(r) {
  const ws = [" ", "  ", "   ", "\t", "\t\t", "\n", "\n\n", "\n\n\n", "\r\n", "\r\n\r\n", " \t ", "\u00a0", "\u3000",
    "\u2028", "\u0085", "\v", "\f", "        ", " ".repeat(40), "\t".repeat(12), "\n".repeat(9)];
  const words = ["alpha", "beta", "gamma", "x", "42", "é", "中文", "🙂", "end", "(", ")", "--", "..."];
  let s = "";
  for (let i = 0; i < 300; i++) {
    s += r() < 0.5 ? words[Math.floor(r() * words.length)] : "";
    s += ws[Math.floor(r() * ws.length)];
  }
  return "   leading spaces" + s + "trailing spaces   \n\n";
}

function specialLookalikes() {
  const toks = ["<bos>", "<eos>", "<pad>", "<unk>", "<start_of_turn>", "<end_of_turn>", "<start_of_image>",
    "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<think>", "</think>", "<tool_call>", "<|begin_of_text|>",
    "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|reserved_special_token_5|>",
    "<unused12>", "<mask>", "[multimodal]", "<0x41>", "<0xZZ>"];
  const near = ["<bos", "bos>", "< bos>", "<BOS>", "<|im_sta", "<|im_start|", "|im_start|>", "<|im_start|><|im_start|>",
    "<<bos>>", "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n", "<|im_start|>system\nYou are helpful.<|im_end|>\n",
    "<|start_header_id|>user<|end_header_id|>\n\nhello<|eot_id|>", "text<bos>text", " <eos> ", "\n<|im_end|>\n",
    "<unused6241>", "<unused6242>", "<unused>", "<|reserved_special_token_250|>", "<|reserved_special_token_999|>"];
  let s = "";
  for (const t of toks) s += `Token ${t} in a sentence; adjacent:${t}${t}; spaced: ${t} .\n`;
  for (const t of near) s += `near miss: ${t}\n`;
  return s;
}

function mix(r, pools, n) {
  let s = "";
  for (let i = 0; i < n; i++) {
    const pool = pools[Math.floor(r() * pools.length)];
    s += pool[Math.floor(r() * pool.length)];
    const sep = r();
    s += sep < 0.6 ? " " : sep < 0.85 ? "\n" : sep < 0.95 ? "\n\n" : "\r\n";
  }
  return s;
}

export function makeCorpus(srcRoot) {
  const r = rng(20240611);
  const docs = [];
  // prose: the seeds, then shuffled paragraphs
  docs.push({ name: "english-seeds", text: ENGLISH.join("\n\n") + "\n" });
  for (let k = 0; k < 6; k++) docs.push({ name: `english-${k}`, text: mix(r, [ENGLISH], 40) });
  for (const [name, pool] of [["chinese", CHINESE], ["japanese", JAPANESE], ["korean", KOREAN], ["arabic", ARABIC],
    ["hindi", HINDI], ["russian", RUSSIAN], ["other-scripts", OTHER]]) {
    docs.push({ name, text: pool.join("") + "\n" + mix(r, [pool], 40) });
  }
  docs.push({ name: "multilingual-mix", text: mix(r, [ENGLISH, CHINESE, JAPANESE, KOREAN, ARABIC, HINDI, RUSSIAN, OTHER], 120) });
  docs.push({ name: "unicode-normalization", text: UNICODE_CASES.join("\n") + "\n" });
  for (let k = 0; k < 3; k++) docs.push({ name: `emoji-${k}`, text: emoji(r) });
  for (let k = 0; k < 3; k++) docs.push({ name: `digits-${k}`, text: digits(r) });
  for (let k = 0; k < 3; k++) docs.push({ name: `whitespace-${k}`, text: whitespace(r) });
  docs.push({ name: "crlf", text: ENGLISH.slice(0, 6).join("\r\n") + "\r\n\r\nline\r\n\r\n\r\nend\r" });
  docs.push({ name: "special-lookalikes", text: specialLookalikes() });
  CODE_SNIPPETS.forEach((c, i) => docs.push({ name: `code-snippet-${i}`, text: c }));
  // tunic's own sources (written by us) as a large body of real code
  for (const rel of ["src/tokenizer/tok_encode.c", "src/tokenizer/tok_pipeline.c", "src/tokenizer/chat.c",
    "include/tunic/tokenizer.h", "tests/tokenizer/corpus.mjs"]) {
    const p = path.join(srcRoot, rel);
    if (fs.existsSync(p)) docs.push({ name: `code-${path.basename(rel)}`, text: fs.readFileSync(p, "utf8") });
  }
  // small edge cases
  for (const t of ["", " ", "\n", "a", "é", "🙂", "  ", "\t\n", "<bos>", "x<bos>", "<|im_end|>", "0", "00000", "\u0301",
    "'s 'S 'LL 'Re it's IT'S", "hello\u00a0world", "a\u2028b", "\u{10FFFF}\u{E0001}", "\uFFFD"]) {
    docs.push({ name: "edge", text: t });
  }
  return docs;
}

// Byte strings with invalid UTF-8: the reference reads them as a JS string via TextDecoder
// semantics (Buffer.toString), tunic from raw bytes; both must give the same ids.
export function makeInvalidUtf8() {
  const h = (s) => Buffer.from(s.replace(/\s+/g, ""), "hex");
  return [
    h("48656c6c6f ff 20776f726c64"),            // stray 0xFF
    h("e4b8ad e4b8 20 41"),                      // truncated 3-byte sequence
    h("c3 28 c3a9"),                             // bad continuation
    h("eda080 41"),                              // UTF-16 surrogate encoded in UTF-8
    h("f0 9f 98 41 f09f9880"),                  // truncated 4-byte then a valid emoji
    h("c0af e080af f8888080af 41"),              // overlongs and 5-byte form
    h("80 80 80 bf"),                            // lone continuation bytes
    h("3c626f733e ff 3c626f733e"),               // around a special token
    h("f4908080 20 ef bfbd"),                    // above U+10FFFF, then a real U+FFFD
  ];
}

// CLI: node corpus.mjs SRCROOT OUT.txt  -> the corpus concatenated (for the benchmark)
if (process.argv[1] && process.argv[1].endsWith("corpus.mjs") && process.argv.length >= 4) {
  const docs = makeCorpus(process.argv[2]);
  fs.writeFileSync(process.argv[3], docs.map((d) => d.text).join("\n"));
}
