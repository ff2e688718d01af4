"""What the guard gateway adds to a chat completion (issue 14: ≤ 15 ms p95).

    .venv/bin/python tests/benchmarks/bench_gateway.py [--requests N] [--write-doc]

Two processes on loopback: the local OpenAI-wire upstream (tests/plugins/gateway/
gateway_testkit.py, answering at once) and ``opsloop guard serve`` in front of it (default
settings: every scanner with the shipped model, PII pseudonymised through the vault, the
canary, markup stripping; a 4-request/minute budget would only add a dict lookup, so none).
One client sends the same request in turn straight to the upstream, through a bare
pass-through proxy (the same FastAPI + uvicorn + httpx, no checks: what any proxy hop costs)
and through the gateway — side by side, so all see the same machine load — non-streamed and
streamed (time to the last byte). The request: a 230-character system prompt and a 1 KB user message
holding an e-mail address; the answer echoes it (about 1 KB).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
KIT = ROOT / "tests" / "plugins" / "gateway"
DOC = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- gateway-results:start -->", "<!-- gateway-results:end -->"
KEY = "olg-bench-0123456789abcdef0123456789abcdef"
SYSTEM = (
    "You are the support assistant of Acme Corp. Answer questions about orders, refunds and "
    "shipping politely and briefly. Never reveal internal notes. If you do not know, say so "
    "and offer to open a ticket for the customer."
)
USER = (
    "Hi, I'm writing about order 4471 which I placed three weeks ago. My e-mail address is "
    "jane.doe@example.com. The tracking page has not changed for nine days and says the parcel "
    "is at the regional depot. I have already called the courier twice; they told me to ask "
    "the shop. Could you check whether the parcel was lost, and if so, either send a "
    "replacement or refund me? I would prefer a replacement because the item was a birthday "
    "present for my sister, whose birthday is next Saturday. If a replacement cannot arrive "
    "before Friday, please refund the full amount including shipping to the original card. "
    "Also, the invoice shows a handling fee that was not mentioned at checkout; could you "
    "explain what that is for? Many thanks for your help, and sorry for the long message. "
    "Best regards, Jane. PS: my phone is best reached in the afternoon."
)


PROXY = """
import httpx, uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse
app = FastAPI()
client = httpx.AsyncClient(base_url="http://127.0.0.1:%d/v1/", trust_env=False)
@app.get("/healthz")
async def healthz():
    return {"status": "ok"}
@app.post("/v1/chat/completions")
async def chat(request: Request):
    body = await request.body()
    req = client.build_request("POST", "chat/completions", content=body,
                               headers={"content-type": "application/json"})
    up = await client.send(req, stream=True)
    async def relay():
        async for part in up.aiter_raw():
            yield part
        await up.aclose()
    return StreamingResponse(relay(), up.status_code, media_type=up.headers["content-type"])
uvicorn.run(app, host="127.0.0.1", port=%d, log_level="warning", access_log=False)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server for {url} exited: {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not start")


def cpu_ms(pid: int) -> float:
    """CPU time (user + system) a process has used so far, in ms (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(requests: int) -> dict[str, Any]:
    up_port, gw_port, px_port = free_port(), free_port(), free_port()
    env = {**os.environ, "OPSLOOP_DISABLE_PLUGINS": "guardrails", "BENCH_KEY": KEY}
    upstream = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import sys; sys.path.insert(0, {str(KIT)!r}); import uvicorn; "
            "from gateway_testkit import upstream_app; "
            f"uvicorn.run(upstream_app(), host='127.0.0.1', port={up_port}, "
            "log_level='warning', access_log=False)",
        ],
        env=env,
    )
    folder = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    (folder / "opsloop.toml").write_text(
        '[project]\nname = "bench"\n[plugin.gateway]\n'
        f'upstream = "http://127.0.0.1:{up_port}/v1"\n'
        '[[plugin.gateway.keys]]\nname = "bench"\nenv = "BENCH_KEY"\n',
        encoding="utf-8",
    )
    opsloop = str(Path(sys.executable).with_name("opsloop"))
    gateway = subprocess.Popen(
        [opsloop, "guard", "serve", "--port", str(gw_port)],
        cwd=folder,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    proxy = subprocess.Popen([sys.executable, "-c", PROXY % (up_port, px_port)], env=env)
    try:
        wait_ready(f"http://127.0.0.1:{up_port}/v1/models", upstream)
        wait_ready(f"http://127.0.0.1:{gw_port}/healthz", gateway)
        wait_ready(f"http://127.0.0.1:{px_port}/healthz", proxy)
        body = {
            "model": "test-model",
            "messages": [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": USER},
            ],
        }
        targets = {
            "direct": (f"http://127.0.0.1:{up_port}/v1/chat/completions", {}),
            "proxy": (f"http://127.0.0.1:{px_port}/v1/chat/completions", {}),
            "gateway": (
                f"http://127.0.0.1:{gw_port}/v1/chat/completions",
                {"authorization": f"Bearer {KEY}"},
            ),
        }
        out: dict[str, Any] = {}
        with httpx.Client(timeout=30) as client:
            for mode in ("plain", "stream"):
                times: dict[str, list[float]] = {"direct": [], "proxy": [], "gateway": []}
                cpu_start: dict[str, float] = {}
                for i in range(requests + 50):
                    if i == 50:
                        cpu_start = {
                            "gw": cpu_ms(gateway.pid),
                            "up": cpu_ms(upstream.pid),
                            "px": cpu_ms(proxy.pid),
                        }
                    # A new message each round: the gateway remembers texts it found clean
                    # (a conversation's history), which would make a repeated one free.
                    messages = [body["messages"][0], {"role": "user", "content": f"{USER} #{i}"}]
                    payload = {**body, "messages": messages, "stream": mode == "stream"}
                    for name, (url, headers) in targets.items():
                        started = time.perf_counter()
                        with client.stream("POST", url, json=payload, headers=headers) as r:
                            data = r.read()
                        elapsed = (time.perf_counter() - started) * 1000
                        if r.status_code != 200:
                            raise SystemExit(f"{name} answered {r.status_code}: {data[:300]!r}")
                        if name == "gateway" and mode == "plain":
                            text = json.loads(data)["choices"][0]["message"]["content"]
                            assert "jane.doe@example.com" in text  # revealed from the vault
                        if i >= 50:  # warm-up
                            times[name].append(elapsed)
                stats: dict[str, Any] = {
                    "cpu_ms_per_request": {
                        "gateway": (cpu_ms(gateway.pid) - cpu_start["gw"]) / requests,
                        "proxy": (cpu_ms(proxy.pid) - cpu_start["px"]) / requests,
                        # the upstream answers all three
                        "upstream": (cpu_ms(upstream.pid) - cpu_start["up"]) / (3 * requests),
                    },
                    "load_average": os.getloadavg()[0],
                }
                for name, values in times.items():
                    stats[name] = {
                        "p50": statistics.median(values),
                        "p95": pct(values, 0.95),
                        "p99": pct(values, 0.99),
                    }
                for via in ("proxy", "gateway"):
                    added = [g - d for g, d in zip(times[via], times["direct"], strict=True)]
                    stats[f"added_{via}"] = {  # per pair of requests sent one after the other
                        "p50": statistics.median(added),
                        "p95": pct(added, 0.95),
                        "p95_of_latency": stats[via]["p95"] - stats["direct"]["p95"],
                        "ratio_p50": stats[via]["p50"] / stats["direct"]["p50"],
                    }
                out[mode] = stats
        return out
    finally:
        for proc in (gateway, proxy, upstream):
            proc.terminate()
            proc.wait(10)


def lines(result: dict[str, Any], requests: int) -> list[str]:
    cpu = platform.processor() or platform.machine()
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    rows = [
        f"Measured {when}: {requests} requests per mode and route after 50 warm-up "
        "requests, sent in turn direct, through a bare proxy and through the gateway; Python "
        f"{platform.python_version()}, {cpu}, {os.cpu_count()} cores shared with other work "
        "(load average in the table).",
        "",
        "| mode | route | p50 / p95 / p99 (ms) | added p50 (ms) | route p95 − direct p95 (ms) "
        "| ratio p50 | CPU per request (ms) | load average |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for mode, stats in result.items():
        name = "streamed (to the last byte)" if mode == "stream" else "non-streamed"
        for route in ("direct", "proxy", "gateway"):
            t = stats[route]
            cpu_key = "upstream" if route == "direct" else route
            added = stats.get(f"added_{route}")
            extra = (
                f"{added['p50']:.1f} | {added['p95_of_latency']:.1f} | {added['ratio_p50']:.1f}×"
                if added
                else "- | - | 1.0×"
            )
            label = {"direct": "direct", "proxy": "bare proxy", "gateway": "guard gateway"}
            rows.append(
                f"| {name} | {label[route]} | {t['p50']:.1f} / {t['p95']:.1f} / {t['p99']:.1f} "
                f"| {extra} | {stats['cpu_ms_per_request'][cpu_key]:.1f} "
                f"| {stats['load_average']:.1f} |"
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--write-doc", action="store_true")
    args = parser.parse_args()
    result = run(args.requests)
    out = lines(result, args.requests)
    print("\n".join(out))
    print(json.dumps(result, indent=2))
    if args.write_doc:
        text = DOC.read_text(encoding="utf-8")
        head, found, rest = text.partition(START)
        if not found:
            raise SystemExit(f"{DOC} lacks the marker {START}")
        _, _, tail = rest.partition(END)
        DOC.write_text(head + "\n".join([START, *out, END]) + tail, encoding="utf-8")


if __name__ == "__main__":
    main()
