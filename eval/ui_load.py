"""Fire N simultaneous questions at a running UI (``python -m rag ui``) and report latency.

    python eval/ui_load.py [--url http://127.0.0.1:7860/] [--sessions 8] [--rounds 3]

Each session is its own gradio_client connection asking a different question; the script
checks that every session got the answer to its own question (the expected word appears).
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time

from gradio_client import Client

QUESTIONS = [  # (question, a word only its own answer contains)
    ("Who offered to mediate between Kabul and Islamabad?", "Iran"),
    ("Who is the Iranian foreign minister?", "Amir-abdollah"),
    ("Where did the Taliban delegation visit after Trump called off talks?", "Trump"),
    ("Which Afghan opposition leaders did the Taliban meet in Tehran?", "opposition"),
    ("Where did Khalilzad meet the Taliban?", "Khalilzad"),
    ("Where did the Kabul-Islamabad peace talks collapse?", "Istanbul"),
    ("Which Pakistani foreign minister spoke with Araghchi?", "Ishaq Dar"),
    ("What did Iran confirm about talks with the Taliban?", "Washington"),
]


def ask(url: str, question: str) -> tuple[float, str]:
    client = Client(url, verbose=False)
    t0 = time.perf_counter()
    history, *_ = client.predict(question, [], 5, "", "", "", "none (extractive)", api_name="/ask")
    seconds = time.perf_counter() - t0
    content = history[-1]["content"]
    text = content if isinstance(content, str) else " ".join(p.get("text", "") for p in content)
    return seconds, text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", default="http://127.0.0.1:7860/")
    ap.add_argument("--sessions", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    ask(args.url, QUESTIONS[0][0])  # warm-up: model loaded, caches filled
    latencies: list[float] = []
    wrong: list[str] = []
    for _ in range(args.rounds):
        barrier = threading.Barrier(args.sessions)

        def session(i: int, barrier: threading.Barrier = barrier) -> None:
            question, expected = QUESTIONS[i % len(QUESTIONS)]
            barrier.wait()
            seconds, text = ask(args.url, question)
            latencies.append(seconds)
            if expected not in text:
                wrong.append(f"{question!r} -> {text[:120]!r}")

        threads = [threading.Thread(target=session, args=(i,)) for i in range(args.sessions)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    ordered = sorted(latencies)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    print(json.dumps({
        "sessions": args.sessions, "requests": len(latencies),
        "p50_s": round(statistics.median(latencies), 3), "p95_s": round(p95, 3), "max_s": round(ordered[-1], 3),
        "own_answer": len(latencies) - len(wrong), "wrong": wrong,
    }, indent=2))


if __name__ == "__main__":
    main()
