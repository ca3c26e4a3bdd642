"""Fraction of sampled words that are real words: in Debian's wamerican list
(/usr/share/dict/words) or in the KJV text itself, compared case-insensitively.
A word is a run of letters, with inner apostrophes ("LORD's"); "X's" also counts
when X is a word. With BPE tokens most sampled "words" are whole vocabulary
tokens, so the script also reports a stricter fluency figure: the fraction of
adjacent word pairs (within a line, case-insensitive) that occur somewhere in the KJV.

  /usr/bin/python3 word_check.py [out/samples.json] [--kjv /tmp/tiny-lm-data/kjv.txt]

samples.json (written by verify.mjs): [{temperature, top_k, prompt, text}, ...];
the prompt is not counted, only the generated text."""
import argparse, collections, json, os, re

HERE = os.path.dirname(os.path.abspath(__file__))
ap = argparse.ArgumentParser()
ap.add_argument("samples", nargs="?", default=os.path.join(HERE, "out", "samples.json"))
ap.add_argument("--kjv", default="/tmp/tiny-lm-data/kjv.txt")
ap.add_argument("--dict", default="/usr/share/dict/words")
ap.add_argument("--show", type=int, default=3, help="print this many samples per setting")
args = ap.parse_args()

WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)*")
known = {w.strip().lower() for w in open(args.dict, encoding="utf-8", errors="replace")}
kjv_text = open(args.kjv, encoding="utf-8").read()
kjv = {w.lower() for w in WORD.findall(kjv_text)}
known |= kjv


def pairs(text):
    for line in text.split("\n"):
        ws = [w.lower() for w in WORD.findall(line)]
        yield from zip(ws, ws[1:])


kjv_pairs = set(pairs(kjv_text))


def real(w):
    w = w.lower()
    return w in known or (w.endswith("'s") and w[:-2] in known)


samples = json.load(open(args.samples))
groups = collections.OrderedDict()
for s in samples:
    groups.setdefault((s["temperature"], s["top_k"]), []).append(s)
result = {}
for (temp, top_k), ss in groups.items():
    words = [w for s in ss for w in WORD.findall(s["text"])]
    bad = collections.Counter(w for w in words if not real(w))
    frac = 1 - sum(bad.values()) / max(1, len(words))
    ps = [p for s in ss for p in pairs(s["text"])]
    pfrac = sum(p in kjv_pairs for p in ps) / max(1, len(ps))
    label = f"temperature {temp}" + (f", top_k {top_k}" if top_k else ", no top-k")
    print(f"{label}: {len(ss)} samples, {len(words)} words, {frac:.1%} real "
          f"({sum(bad.values())} not: {', '.join(w for w, _ in bad.most_common(12))}); "
          f"{pfrac:.1%} of {len(ps)} word pairs occur in the KJV")
    for s in ss[:args.show]:
        print(f"   [{s['prompt']}]{s['text']!r}")
    result[label] = {"samples": len(ss), "words": len(words), "real_fraction": round(frac, 4),
                     "kjv_pair_fraction": round(pfrac, 4)}
print(json.dumps(result))
