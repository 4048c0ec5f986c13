"""Train the answer-sentence reader: a cross-encoder fine-tuned from the bundled all-MiniLM-L6-v2.

``python -m rag train`` rebuilds the shipped model from the shared RealTime QA data with fixed
seeds: it mines (question, sentence) groups with our retriever (``train_data``), fine-tunes
MiniLM as a cross-encoder on the training years (question and sentence as one pair, mean
pooling, one linear output), and writes only the tensors that training changed, in float16,
next to a ``reader.json`` that names the base model. The word embeddings stay frozen, so the
shipped file holds the transformer layers and the head, not the whole model. Only the lower 4
of MiniLM's 6 layers are kept: a third less to compute per answer (the reader scores ~24
sentences a question on a laptop CPU) and to train.

The loss is pointwise (binary cross-entropy, so a score reads as the chance that the sentence
answers, which abstention needs) plus listwise (softmax over one question's candidates, so the
right sentence beats its neighbours, which choosing the answer needs). Runs on CUDA when
present (bf16), else on the CPU (bf16 autocast where the CPU has bf16 units).
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from rag.embed.base import resolve_model_path
from rag.embed.torch_model import bf16_supported

READER_FILE = "reader.safetensors"
CONFIG_FILE = "reader.json"


def pairs_of(group: dict) -> tuple[list[str], list[float]]:
    texts = group["positives"] + group["negatives"]
    return texts, [1.0] * len(group["positives"]) + [0.0] * len(group["negatives"])


def train_reader(groups: list[dict], out_dir: Path, *, base: str = "all-MiniLM-L6-v2", epochs: float = 1.0,
                 lr: float = 5e-5, head_lr: float = 1e-3, groups_per_batch: int = 2, max_length: int = 128,
                 seed: int = 13, device: str = "", max_minutes: float = 0.0, save_every: int = 200,
                 num_layers: int = 4, log: Callable[[str], None] = print) -> dict:
    """Fine-tune the cross-encoder on ``groups`` (see ``train_data.mine_year``); write it to ``out_dir``."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    base_path = resolve_model_path(base)
    tok = AutoTokenizer.from_pretrained(str(base_path))
    bert = AutoModel.from_pretrained(str(base_path), add_pooling_layer=False).to(device)
    if 0 < num_layers < bert.config.num_hidden_layers:  # the lower layers only: faster to train and to run
        bert.encoder.layer = bert.encoder.layer[:num_layers]
        bert.config.num_hidden_layers = num_layers
    bert.embeddings.word_embeddings.weight.requires_grad_(False)
    head = torch.nn.Linear(bert.config.hidden_size, 1).to(device)
    torch.nn.init.normal_(head.weight, std=0.02)
    torch.nn.init.zeros_(head.bias)
    groups = [g for g in groups if g["positives"] or g["negatives"]]
    rng = random.Random(seed)
    steps_per_epoch = math.ceil(len(groups) / groups_per_batch)
    total = max(1, int(steps_per_epoch * epochs))
    params = [p for p in bert.parameters() if p.requires_grad]
    opt = torch.optim.AdamW([{"params": params, "lr": lr}, {"params": head.parameters(), "lr": head_lr}],
                            weight_decay=0.01)
    warm = max(1, total // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min((s + 1) / warm, max(0.0, (total - s) / (total - warm))))
    use_bf16 = device.startswith("cuda") or bf16_supported()
    bert.train()
    t0 = time.time()
    order: list[dict] = []
    seen_pairs, losses, step = 0, [], 0
    while step < total:
        if not order:
            order = groups[:]
            rng.shuffle(order)
        batch, order = order[:groups_per_batch], order[groups_per_batch:]
        firsts, seconds, labels, owner = [], [], [], []
        for gi, g in enumerate(batch):
            texts, ys = pairs_of(g)
            firsts += [g["question"]] * len(texts)
            seconds += texts
            labels += ys
            owner += [gi] * len(texts)
        enc = tok(firsts, seconds, truncation="longest_first", max_length=max_length, padding=True, return_tensors="pt")
        enc = {k: v.to(device) for k, v in enc.items()}
        y = torch.tensor(labels, device=device)
        own = torch.tensor(owner, device=device)
        with torch.autocast(device_type="cuda" if device.startswith("cuda") else "cpu", dtype=torch.bfloat16,
                            enabled=use_bf16):
            hidden = bert(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            logits = head(pooled).squeeze(-1).float()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y)
        listwise = []
        for gi in range(len(batch)):
            sel = own == gi
            if y[sel].sum() > 0 and (y[sel] == 0).any():
                lg = logits[sel]
                listwise.append(torch.logsumexp(lg, 0) - torch.logsumexp(lg[y[sel] > 0], 0))
        if listwise:
            loss = loss + torch.stack(listwise).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params + list(head.parameters()), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        seen_pairs += len(labels)
        losses.append(float(loss.detach()))
        elapsed = time.time() - t0
        if step % 20 == 0 or step == total:
            eta = elapsed / step * (total - step)
            log(f"step {step}/{total}  pairs {seen_pairs}  loss {np.mean(losses[-50:]):.4f}  "
                f"{seen_pairs / elapsed:.1f} pairs/s  ETA {eta / 60:.1f} min")
        if save_every and step % save_every == 0:
            save_reader(bert, head, out_dir, base, max_length, {"steps": step, "pairs": seen_pairs})
        if max_minutes and elapsed > max_minutes * 60:
            log(f"time budget of {max_minutes} min reached at step {step}/{total}")
            break
    info = {"steps": step, "pairs": seen_pairs, "groups": len(groups), "train_seconds": round(time.time() - t0, 1),
            "device": device, "bf16": use_bf16, "final_loss": round(float(np.mean(losses[-50:])), 4), "seed": seed,
            "lr": lr, "head_lr": head_lr, "groups_per_batch": groups_per_batch, "epochs": epochs,
            "num_layers": bert.config.num_hidden_layers, "max_length": max_length}
    save_reader(bert, head, out_dir, base, max_length, info)
    return info


def save_reader(bert, head, out_dir: Path, base: str, max_length: int, info: dict) -> None:
    """Write the trained tensors (float16, word embeddings left out) and ``reader.json``."""
    import torch
    from safetensors.torch import save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    tensors = {name: p.detach().cpu().to(torch.float16).contiguous()
               for name, p in bert.state_dict().items() if name != "embeddings.word_embeddings.weight"
               and "position_ids" not in name}
    tensors["head.weight"] = head.weight.detach().cpu().half().contiguous()
    tensors["head.bias"] = head.bias.detach().cpu().half().contiguous()
    tmp = out_dir / (READER_FILE + ".tmp")
    save_file(tensors, str(tmp))
    tmp.replace(out_dir / READER_FILE)
    cfg_path = out_dir / CONFIG_FILE
    cfg = json.loads(cfg_path.read_text()) if cfg_path.exists() else {}
    cfg.update({"type": "rag-reader", "base_model": base, "pooling": "mean", "max_length": max_length,
                "num_layers": bert.config.num_hidden_layers,
                "weights": READER_FILE, "training": info})
    cfg_path.write_text(json.dumps(cfg, indent=2) + "\n")


def datasets(shared: Path) -> list[Path]:
    """The RealTime QA folders under ``shared`` (``realtimeqa-2023`` and ``realtimeqa-more``)."""
    from rag.errors import RagError

    dirs = [shared / "realtimeqa-2023", shared / "realtimeqa-more"]
    missing = [str(d) for d in dirs if not (d / "corpus.jsonl.gz").is_file() or not (d / "questions.jsonl").is_file()]
    if missing:
        raise RagError(f"RealTime QA data not found: {', '.join(missing)} (need corpus.jsonl.gz and questions.jsonl)")
    return dirs


def mined_groups(shared: Path, years: list[str], work: Path, seed: int = 13,
                 log: Callable[[str], None] = print) -> list[dict]:
    """Training groups of ``years``, mined once and cached as ``work/groups-YEAR.jsonl``."""
    from rag.tools.train_data import load_years, mine_year

    groups: list[dict] = []
    work.mkdir(parents=True, exist_ok=True)
    for year in years:
        cache = work / f"groups-{year}.jsonl"
        if not cache.is_file():
            t0 = time.time()
            data = load_years(datasets(shared), {year}).get(year)
            if data is None:
                from rag.errors import RagError

                raise RagError(f"no RealTime QA questions dated {year}")
            log(f"mining {year}: {len(data.documents)} articles, {len(data.questions)} questions")
            rows = list(mine_year(data, seed=seed))
            tmp = cache.with_suffix(".tmp")
            tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
            tmp.replace(cache)
            log(f"mined {year} in {time.time() - t0:.0f} s")
        groups += [json.loads(line) for line in cache.read_text(encoding="utf-8").splitlines()]
    return groups


def recipe(shared: Path, out: Path, work: Path, years: list[str], *, epochs: float = 1.0, max_minutes: float = 0.0,
           device: str = "", seed: int = 13, lr: float = 5e-5, num_layers: int = 4, log: Callable[[str], None] = print) -> dict:
    """The whole recipe: mine the training years, fine-tune, write the model to ``out``."""
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as e:
        from rag.errors import MissingExtraError

        raise MissingExtraError(f"training needs torch and transformers ({e}); install rag with its dependencies") from None
    groups = mined_groups(shared, years, work, seed=seed, log=log)
    pos = sum(len(g["positives"]) for g in groups)
    neg = sum(len(g["negatives"]) for g in groups)
    log(f"{len(groups)} questions, {pos} positive and {neg} negative sentences from {', '.join(years)}")
    info = train_reader(groups, out, epochs=epochs, seed=seed, device=device, max_minutes=max_minutes, lr=lr,
                        num_layers=num_layers, log=log)
    info.update(train_years=years, positives=pos, negatives=neg)
    return info


def main(argv: list[str] | None = None) -> None:
    """``python -m rag.tools.train_reader --data DIR``: rebuild the sentence cross-encoder (``--rerank learned``)."""
    import argparse
    import json
    import sys

    from rag.search.rerank import SHIPPED_READER

    p = argparse.ArgumentParser(description="Rebuild the sentence cross-encoder of --rerank learned.")
    p.add_argument("--data", type=Path, required=True, help="folder holding realtimeqa-2023/ and realtimeqa-more/")
    p.add_argument("--out", type=Path, default=SHIPPED_READER)
    p.add_argument("--work", type=Path, default=Path("runs/reader"))
    p.add_argument("--train-years", default="2022,2023")
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--max-minutes", type=float, default=0.0)
    p.add_argument("--device", default="")
    p.add_argument("--seed", type=int, default=13)
    a = p.parse_args(argv)
    years = [y.strip() for y in a.train_years.split(",") if y.strip()]
    info = recipe(a.data, a.out, a.work, years, epochs=a.epochs, max_minutes=a.max_minutes, device=a.device,
                  seed=a.seed, lr=a.lr, num_layers=a.layers, log=lambda m: print(m, file=sys.stderr))
    print(json.dumps(info, indent=2))


if __name__ == "__main__":
    main()
