"""Langfuse telemetry, offline: a local capture server stands in for Langfuse.

    python examples/telemetry_langfuse.py

Prints the observations that arrived (OTLP JSON, as Langfuse ingests it), with the
prompt and completion since capture_content is on by default.
"""

from __future__ import annotations

import pipeclient
from pipeclient.testing import CaptureServer, MockBackend


def main() -> None:
    with CaptureServer() as langfuse:
        telemetry = {
            "langfuse": {
                "enabled": True,
                "host": langfuse.url,
                "public_key": "pk-lf-demo",
                "secret_key": "sk-lf-demo",
            }
        }
        client = pipeclient.Client(backends=[MockBackend().backend()], telemetry=telemetry)
        with client.trace("support-answer"):
            client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": "Where is my order 1234?"}],
            )
        client.close()
        for request in langfuse.requests:
            print(
                f"{request.method} {request.path} (auth: {request.headers['authorization'][:6]}...)"
            )
            for resource in request.json()["resourceSpans"]:
                for scope in resource["scopeSpans"]:
                    for span in scope["spans"]:
                        print(f"\n  span {span['name']!r} trace {span['traceId']}")
                        for attribute in span.get("attributes", []):
                            value = next(iter(attribute["value"].values()))
                            print(f"    {attribute['key']} = {value}")


if __name__ == "__main__":
    main()
