"""Load benchmark for ``python -m rag serve``: concurrent clients against /v1/search and /v1/chat/completions.

    python eval/api_load.py --url http://127.0.0.1:8000 --clients 32 --seconds 60 [--key KEY]

Each client repeatedly sends one of a fixed set of questions. A first pass, one request at a
time, records the right response for every question; under load every response must match
the one for the question that client sent (so an answer delivered to the wrong client is
caught), and any non-200 status is an error. Prints a JSON summary with p50/p95 latencies.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

import httpx

QUESTIONS = [
    "Who offered to mediate between Kabul and Islamabad?",
    "Where did the US envoy meet the Taliban?",
    "Which Taliban official led the delegation to Tehran?",
    "What did Trump decide about the peace talks?",
    "How many US troops were in Afghanistan?",
    "What did the Iranian foreign minister urge?",
    "Who briefed Araghchi on the Istanbul talks?",
    "Which city hosted the peace talks that collapsed?",
]


def _request(kind: str, question: str) -> tuple[str, dict]:
    if kind == "search":
        return "/v1/search", {"query": question, "k": 5}
    return "/v1/chat/completions", {"model": "rag", "messages": [{"role": "user", "content": question}]}


def _fingerprint(kind: str, body: dict) -> str:
    """What must be identical for the same question: the passages, or the answer and its citations."""
    if kind == "search":
        return json.dumps([(r["doc_id"], r["start"], r["end"]) for r in body["results"]])
    message = body["choices"][0]["message"]
    cited = [(c["doc_id"], c["start"]) for c in message.get("citations", [])]
    return json.dumps([message["content"], cited])


def _percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))] if values else 0.0


async def run(url: str, kind: str, clients: int, seconds: float, headers: dict) -> dict:
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=300, limits=limits) as http:
        expected = {}
        for q in QUESTIONS:
            path, payload = _request(kind, q)
            r = await http.post(path, json=payload)
            r.raise_for_status()
            expected[q] = _fingerprint(kind, r.json())
        latencies: list[float] = []
        errors: dict[str, int] = {}
        wrong = 0
        deadline = time.monotonic() + seconds

        async def client(i: int) -> None:
            nonlocal wrong
            n = i
            while time.monotonic() < deadline:
                q = QUESTIONS[n % len(QUESTIONS)]
                n += 1
                path, payload = _request(kind, q)
                t0 = time.perf_counter()
                try:
                    r = await http.post(path, json=payload)
                except httpx.HTTPError as e:
                    errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1
                    continue
                latencies.append((time.perf_counter() - t0) * 1000)
                if r.status_code != 200:
                    errors[str(r.status_code)] = errors.get(str(r.status_code), 0) + 1
                elif _fingerprint(kind, r.json()) != expected[q]:
                    wrong += 1

        t0 = time.monotonic()
        await asyncio.gather(*(client(i) for i in range(clients)))
        elapsed = time.monotonic() - t0
    return {
        "endpoint": kind, "clients": clients, "seconds": round(elapsed, 1), "requests": len(latencies),
        "requests_per_s": round(len(latencies) / elapsed, 1), "errors": errors, "wrong_answers": wrong,
        "p50_ms": round(_percentile(latencies, 50), 1), "p95_ms": round(_percentile(latencies, 95), 1),
        "mean_ms": round(statistics.fmean(latencies), 1) if latencies else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--key", default="", help="the server's RAG_API_KEY, if it has one")
    parser.add_argument("--endpoints", default="search,chat", help="comma-separated: search, chat")
    args = parser.parse_args()
    headers = {"Authorization": f"Bearer {args.key}"} if args.key else {}
    for kind in [e.strip() for e in args.endpoints.split(",") if e.strip()]:
        print(json.dumps(asyncio.run(run(args.url, kind, args.clients, args.seconds, headers))), flush=True)


if __name__ == "__main__":
    main()
