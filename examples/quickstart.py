"""pipeclient quickstart.

Offline unless you ask: calls go to pipeclient.testing.MockBackend, in-process, and any
telemetry the environment or .pipelex/telemetry.toml enables is recorded and counted,
not sent. Nothing leaves the machine, whatever the environment holds.

    python examples/quickstart.py

Going online is an explicit choice: `--online` calls the backend the environment names
(PIPECLIENT_BASE_URL and PIPECLIENT_API_KEY, or OPENAI_API_KEY, optionally
OPENAI_BASE_URL; PIPECLIENT_MODEL picks the model), sends two small chat calls (which
your provider may bill) and the telemetry you configured.

    python examples/quickstart.py --online
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys

import pipeclient
from pipeclient.testing import Fault, MockBackend, capture_telemetry


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="pipeclient quickstart (offline by default)")
    parser.add_argument(
        "--online",
        action="store_true",
        help="call the real backend named by the environment instead of the offline mock",
    )
    online = parser.parse_args(argv).online
    with contextlib.ExitStack() as offline_only:
        captured = None if online else offline_only.enter_context(capture_telemetry())
        if online:
            try:
                client = pipeclient.Client()  # backends from the environment
            except pipeclient.ConfigError as exc:
                print(f"quickstart --online: {exc}", file=sys.stderr)
                return 2
            model = os.environ.get("PIPECLIENT_MODEL", "gpt-4o-mini")
            print(f"Online: using the backend from the environment: {client.backends[0].base_url}")
        else:
            mock = MockBackend()
            client = pipeclient.Client(backends=[mock.backend()])
            model = "mock-model"
            print("Offline: using pipeclient.testing.MockBackend; nothing leaves this machine")
            print("(run with --online to call the backend your environment names).")
        try:
            run_calls(client, model, online)
        except pipeclient.PipeclientError as exc:  # online: the backend refused or is down
            print(f"\nquickstart: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
        if captured is not None:
            sent = ", ".join(f"{name}: {len(captured[name])}" for name in sorted(captured))
            print(f"\ntelemetry recorded, not sent: {sent or 'no stream is enabled'}")
    return 0


def run_calls(client: pipeclient.Client, model: str, online: bool) -> None:
    with client:
        messages = [{"role": "user", "content": "Say hello in five words."}]

        response = client.chat.completions.create(model=model, messages=messages, temperature=0.2)
        print("\nchat:", response.choices[0].message.content)
        print(
            f"  tokens: {response.usage.prompt_tokens if response.usage else '?'} in, "
            f"{response.usage.completion_tokens if response.usage else '?'} out; "
            f"request id {response.request_id}"
        )

        print("stream: ", end="", flush=True)
        for chunk in client.chat.completions.create(model=model, messages=messages, stream=True):
            if chunk.choices and chunk.choices[0].delta.content:
                print(chunk.choices[0].delta.content, end="", flush=True)
        print()

        if not online:
            embedding = client.embeddings.create(model="mock-embedding", input=["hello", "world"])
            print(
                f"embeddings: {len(embedding.data)} vectors of {len(embedding.data[0].embedding)}"
            )
            image = client.images.generate(model="mock-image", prompt="a lighthouse")
            print("image:", image.data[0].url if image.data else None)

    if not online:
        # Failover: the first backend answers 503, the call moves on to the second, and
        # both saw the same X-Request-Id.
        primary, standby = MockBackend(), MockBackend()
        primary.push(Fault(status=503))
        with pipeclient.Client(
            backends=[primary.backend("primary"), standby.backend("standby", weight=0)]
        ) as client:
            response = client.chat.completions.create(model=model, messages=messages)
        answer = response.choices[0].message.content
        print(f"\nfailover: primary answered 503, standby answered: {answer!r}")
        print(f"  X-Request-Id at primary: {primary.requests[0].headers['x-request-id']}")
        print(f"  X-Request-Id at standby: {standby.requests[0].headers['x-request-id']}")


if __name__ == "__main__":
    sys.exit(main())
