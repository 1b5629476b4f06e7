"""What the privacy step costs on the worker, per KB of content.

Builds typical chat records (a system prompt, user turns of prose, code, numbers, dates
and versions, assistant answers, a tool call with JSON arguments, and now and then an
email, a phone number, a card number, an IP address or a key) of about 1 KB, 10 KB and
100 KB, and times `PrivacyStep.with_content` on them, as the worker runs it (the request
body is decoded from the bytes sent), for: no transform at all, the client's own keys only
(what every client does, whatever `pii` says), each detector alone, and all detectors.
Prints µs per record and µs per KB; "extra" is the cost over no transform.

    python benchmarks/redaction.py [--repeat 5]

`phone` uses `phonenumbers` when it is installed; `--no-phonenumbers` times the
built-in rules instead.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from typing import Any

from pipeclient._cli.preview import sample_call
from pipeclient._privacy import detectors as _detectors
from pipeclient._telemetry.privacy import PrivacyStep
from pipeclient._telemetry.record import CallRecord
from pipeclient.config import PrivacyConfig

PROSE = (
    "Thanks for the summary. Could you compare the two approaches we discussed on "
    "2024-03-15, the batch importer and the streaming one, in terms of latency and cost? "
    "The current cluster runs release 2.14.1 on 12 nodes, each with 64 GB of memory, and "
    "the nightly job processes about 1,250,000 rows in 47 minutes. Budget is $3,400.00 "
    "per month; order #100045871 covers the reserved instances until 31/12/2025. "
)
CODE = (
    "```python\n"
    "def load(path: str, batch_size: int = 500) -> list[dict[str, object]]:\n"
    "    rows = []\n"
    "    with open(path) as handle:\n"
    "        for index, line in enumerate(handle):\n"
    "            if index % batch_size == 0:\n"
    '                log.info("batch %d at %s", index // batch_size, time.time())\n'
    "            rows.append(json.loads(line))\n"
    "    return rows  # 3.11.7, uuid 123e4567-e89b-12d3-a456-426614174000\n"
    "```\n"
)
ANSWER = (
    "Here is a comparison. The batch importer is simpler: it reads the file once, "
    "groups rows into batches of 500 and commits each batch, so a failure at row 800,000 "
    "only replays one batch. The streaming version keeps p99 latency under 250 ms, but "
    "needs a queue (v1.2.3.4 of the client library) and about 30% more memory. "
)
PII = (
    "Reach me at maria.rossi@example.org or +39 06 6982 1234. ",
    "The staging box is 203.0.113.42, the new one 2001:db8:85a3::8a2e:370:7334. ",
    "Card on file: 4539 1488 0343 6467, please do not charge it twice. ",
    "I pasted OPENAI_API_KEY=sk-proj-4fJk29XbQmW8zR1tLpN6vC3yH7eD0aGs by mistake. ",
)
KNOWN_SECRETS = ("sk-live-backend-key-0123456789", "gw-test-key-abcdef", "phc_projectkey01234")


def conversation(size: int) -> dict[str, Any]:
    """A chat request body whose text adds up to about `size` bytes."""
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "You are a careful assistant for a data team."}
    ]
    total, turn = 0, 0
    while total < size:
        user = PROSE + (CODE if turn % 2 else "") + (PII[turn % 4] if turn % 3 == 2 else "")
        messages.append({"role": "user", "content": user})
        messages.append({"role": "assistant", "content": ANSWER})
        total += len(user) + len(ANSWER)
        turn += 1
    call = {"id": "call_1", "type": "function"}
    arguments = json.dumps({"query": "rows imported since 2024-03-15", "limit": 500})
    messages.append(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{**call, "function": {"name": "search", "arguments": arguments}}],
        }
    )
    return {"model": "gpt-4o-mini", "messages": messages}


def record_of(size: int) -> tuple[CallRecord, int]:
    body = json.dumps(conversation(size)).encode()
    output = [{"role": "assistant", "content": ANSWER * 2}]
    return dataclasses.replace(sample_call(), request_body=body, input=None, output=output), len(
        body
    )


def per_record(step: PrivacyStep, record: CallRecord, repeat: int) -> float:
    """Best mean seconds per `with_content` call over `repeat` rounds of ~0.2 s."""
    step.with_content(record)  # warm: imports, caches
    loops = 1
    while True:
        started = time.perf_counter()
        for _ in range(loops):
            step.with_content(record)
        elapsed = time.perf_counter() - started
        if elapsed >= 0.2:
            break
        loops *= 2
    best = elapsed / loops
    for _ in range(repeat - 1):
        started = time.perf_counter()
        for _ in range(loops):
            step.with_content(record)
        best = min(best, (time.perf_counter() - started) / loops)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-phonenumbers", action="store_true")
    args = parser.parse_args()
    if args.no_phonenumbers:
        _detectors.phone_library.cache_clear()
        _detectors.phone_library = lambda: None  # type: ignore[assignment]
    library = _detectors.phone_library()
    print(f"phone numbers validated by: {'phonenumbers' if library else 'built-in rules'}")
    steps: dict[str, PrivacyStep] = {
        "no transform": PrivacyStep(PrivacyConfig()),
        "own keys only (default)": PrivacyStep(PrivacyConfig(), secrets=KNOWN_SECRETS),
    }
    for name in _detectors.DETECTOR_ORDER:
        steps[f"{name}"] = PrivacyStep(PrivacyConfig(pii=[name]), secrets=KNOWN_SECRETS)
    steps["all detectors"] = PrivacyStep(
        PrivacyConfig(pii=list(_detectors.DETECTOR_ORDER)), secrets=KNOWN_SECRETS
    )
    header = f"{'configuration':<26}" + "".join(
        f"{label:>30}" for label in ("1 KB", "10 KB", "100 KB")
    )
    print(header)
    print(" " * 26 + "".join(f"{'µs/record  µs/KB  extra/KB':>30}" for _ in range(3)))
    records = [record_of(size) for size in (1024, 10 * 1024, 100 * 1024)]
    baseline: list[float] = []
    for name, step in steps.items():
        cells = []
        for index, (record, size) in enumerate(records):
            seconds = per_record(step, record, args.repeat)
            if name == "no transform":
                baseline.append(seconds)
            kb = size / 1024
            extra = (seconds - baseline[index]) / kb * 1e6
            cells.append(f"{seconds * 1e6:>12.1f} {seconds * 1e6 / kb:>7.1f} {extra:>8.1f}")
        print(f"{name:<26}" + "".join(f"{cell:>30}" for cell in cells))
    found = steps["all detectors"].counts()
    print("redactions per detector over the run (all detectors):", found)


if __name__ == "__main__":
    main()
