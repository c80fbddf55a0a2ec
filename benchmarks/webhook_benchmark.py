"""Event Webhook receiver throughput: signed SendGrid-shaped batches over loopback to the real uvicorn server.

    .venv/bin/python benchmarks/webhook_benchmark.py [--events 100000] [--batch 100] [--clients 4]

Starts `python -m lifecycle_assets.webhook` (one uvicorn process, as deployed) on a free port with
a temporary landing zone, posts `--events` distinct events in batches of `--batch` from
`--clients` threads (each with one keep-alive connection, as SendGrid's deliverers), and reports
the sustained rate (events acknowledged per second of wall clock) and the latency of each batch
from sending to its 200, which the receiver answers only once the batch is fsynced and renamed
(latency to durable). Batches are signed before the clock starts, so the figures are the
receiver's, not the client's signing. Client and server share the machine's cores.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lifecycle_assets.webhook.signing import signature_headers  # noqa: E402
from lifecycle_assets_tests.test_webhook.receiver import WebhookReceiver, landed_rows, sendgrid_event  # noqa: E402

EVENT_MIX = ("processed", "delivered", "delivered", "open", "open", "click", "deferred", "bounce", "unsubscribe")


def signed_batches(receiver: WebhookReceiver, events: int, batch: int) -> list[tuple[bytes, dict]]:
    now = int(time.time())
    bodies = []
    for start in range(0, events, batch):
        payload = [
            sendgrid_event(EVENT_MIX[n % len(EVENT_MIX)], n, customer_id=f"C{n % 50_000:06d}",
                           letter_key=f"welcome_day0:C{n % 50_000:06d}:1", timestamp=now)
            for n in range(start, min(start + batch, events))
        ]
        body = json.dumps(payload).encode()
        bodies.append((body, {"Content-Type": "application/json", **signature_headers(receiver.private_key, body, now)}))
    return bodies


def run(events: int, batch: int, clients: int) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="webhook-bench-"))
    try:
        with WebhookReceiver(workdir / "landing") as receiver:
            bodies = signed_batches(receiver, events, batch)
            latencies: list[float] = []
            failures: list[int] = []
            lock = threading.Lock()
            cursor = iter(range(len(bodies)))

            def client() -> None:
                http = requests.Session()
                while True:
                    with lock:
                        index = next(cursor, None)
                    if index is None:
                        return
                    body, headers = bodies[index]
                    started = time.perf_counter()
                    answer = http.post(receiver.url, data=body, headers=headers, timeout=30)
                    elapsed = time.perf_counter() - started
                    with lock:
                        (latencies if answer.status_code == 200 else failures).append(
                            elapsed if answer.status_code == 200 else answer.status_code
                        )

            threads = [threading.Thread(target=client) for _ in range(clients)]
            started = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            wall = time.perf_counter() - started
        stored = len(landed_rows(workdir / "landing"))
        files = len(list((workdir / "landing").glob("interactions/date=*/sendgrid-*.jsonl")))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    latencies.sort()

    def quantile(q: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000, 2)

    return {
        "events": events,
        "batch_size": batch,
        "clients": clients,
        "batches_acknowledged": len(latencies),
        "batches_failed": len(failures),
        "events_stored": stored,
        "landing_files": files,
        "wall_seconds": round(wall, 3),
        "events_per_second": round(events / wall, 1),
        "batches_per_second": round(len(latencies) / wall, 1),
        "latency_to_durable_ms_p50": quantile(0.50),
        "latency_to_durable_ms_p95": quantile(0.95),
        "latency_to_durable_ms_p99": quantile(0.99),
        "latency_to_durable_ms_max": round(latencies[-1] * 1000, 2),
        "latency_to_durable_ms_mean": round(statistics.fmean(latencies) * 1000, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=100, help="events per POST")
    parser.add_argument("--clients", type=int, default=4, help="concurrent connections")
    args = parser.parse_args()
    result = run(args.events, args.batch, args.clients)
    print(f"{result['events']} events in batches of {result['batch_size']} from {result['clients']} clients: "
          f"{result['events_per_second']:,.0f} events/s ({result['batches_per_second']:,.0f} batches/s), "
          f"latency to durable p50 {result['latency_to_durable_ms_p50']} ms, p95 {result['latency_to_durable_ms_p95']} ms, "
          f"p99 {result['latency_to_durable_ms_p99']} ms; {result['events_stored']} events stored in "
          f"{result['landing_files']} files, {result['batches_failed']} batches failed")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
