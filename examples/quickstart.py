"""pipeclient quickstart.

Offline by default: calls go to pipeclient.testing.MockBackend, in-process. Set
PIPECLIENT_BASE_URL and PIPECLIENT_API_KEY (or OPENAI_API_KEY, optionally OPENAI_BASE_URL)
to talk to a real OpenAI-compatible backend instead; PIPECLIENT_MODEL picks the model.

    python examples/quickstart.py
"""

from __future__ import annotations

import os

import pipeclient
from pipeclient.testing import Fault, MockBackend

REAL_BACKEND_VARIABLES = (
    "PIPECLIENT_BASE_URL",
    "PIPECLIENT_API_KEY",
    "OPENAI_BASE_URL",
    "OPENAI_API_KEY",
)


def main() -> None:
    online = any(os.environ.get(name) for name in REAL_BACKEND_VARIABLES)
    if online:
        client = pipeclient.Client()  # backends from the environment
        model = os.environ.get("PIPECLIENT_MODEL", "gpt-4o-mini")
        print(f"Using the backend from the environment: {client.backends[0].base_url}")
    else:
        mock = MockBackend()
        client = pipeclient.Client(backends=[mock.backend()])
        model = "mock-model"
        print("Offline: using pipeclient.testing.MockBackend (set PIPECLIENT_BASE_URL and")
        print("PIPECLIENT_API_KEY, or OPENAI_API_KEY, to call a real backend).")

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
    main()
