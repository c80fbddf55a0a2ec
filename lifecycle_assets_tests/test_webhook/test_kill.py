"""SIGKILL the receiver in the middle of a load: what it acknowledged is on disk, and SendGrid's retry adds no duplicate."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter

import requests

from .receiver import WebhookReceiver, landed_rows, sendgrid_event

BATCHES = 400
BATCH_SIZE = 50
POSTERS = 3


def test_sigkill_during_a_load_loses_no_acknowledged_event_and_the_retry_adds_no_duplicate(tmp_path):
    batches = [
        [sendgrid_event("delivered", b * BATCH_SIZE + i, letter_key=f"welcome_day0:C{i:05d}:{b}") for i in range(BATCH_SIZE)]
        for b in range(BATCHES)
    ]
    acknowledged: list[int] = []
    unacknowledged: list[int] = []
    lock = threading.Lock()
    pending = iter(range(BATCHES))

    receiver = WebhookReceiver(tmp_path / "landing").start()

    def poster() -> None:
        while True:
            with lock:
                index = next(pending, None)
            if index is None:
                return
            try:
                ok = receiver.post(batches[index], timeout=5).status_code == 200
            except requests.RequestException:
                ok = False
            with lock:
                (acknowledged if ok else unacknowledged).append(index)

    threads = [threading.Thread(target=poster) for _ in range(POSTERS)]
    for thread in threads:
        thread.start()
    while len(acknowledged) < 40:
        time.sleep(0.005)
    receiver.kill()
    for thread in threads:
        thread.join()

    def event_ids(indexes):
        return {event["sg_event_id"] for index in indexes for event in batches[index]}

    on_disk = Counter(row["sg_event_id"] for row in landed_rows(receiver.landing_dir))
    acked_ids = event_ids(acknowledged)
    assert acked_ids <= set(on_disk), "an acknowledged event is not on disk"
    assert unacknowledged, "the kill should have left batches unacknowledged"

    # SendGrid retries every batch it got no 2xx for; a 200 lost on its way back looks the same to
    # SendGrid, so the last acknowledged batches come again too.
    retried = unacknowledged + acknowledged[-5:]
    receiver.start()
    try:
        for index in retried:
            assert receiver.post(batches[index]).status_code == 200
    finally:
        receiver.stop()

    stored = Counter(row["sg_event_id"] for row in landed_rows(receiver.landing_dir))
    duplicates = sum(count - 1 for count in stored.values())
    print(json.dumps({"acknowledged_before_kill": len(acked_ids), "on_disk_after_kill": len(on_disk),
                      "batches_unacknowledged": len(unacknowledged), "batches_retried": len(retried), "stored_after_replay": len(stored),
                      "duplicates": duplicates}))
    assert duplicates == 0
    assert set(stored) == event_ids(range(BATCHES))
    assert not list(receiver.landing_dir.rglob(".sendgrid-*")), "a temporary file was left for ingest to see"
