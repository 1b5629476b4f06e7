"""PostHog telemetry, offline: a local capture server stands in for PostHog.

    python examples/telemetry_posthog.py

Prints the $ai_* events that arrived, as PostHog would read them. With redact = true (the
default) no prompt or completion is in them.
"""

from __future__ import annotations

import json

import pipeclient
from pipeclient.testing import CaptureServer, MockBackend


def main() -> None:
    with CaptureServer() as posthog:
        telemetry = {"posthog": {"enabled": True, "host": posthog.url, "api_key": "phc_demo"}}
        client = pipeclient.Client(backends=[MockBackend().backend()], telemetry=telemetry)
        with client.trace("support-answer"):
            client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": "Where is my order 1234?"}],
                temperature=0.2,
            )
        report = client.close()
        print(f"sent: {report.sent if report else {}}")
        for request in posthog.requests:
            print(f"\n{request.method} {request.path}")
            for event in request.json()["batch"]:
                print(json.dumps({"event": event["event"], **event["properties"]}, indent=2))


if __name__ == "__main__":
    main()
