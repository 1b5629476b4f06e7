"""OTLP telemetry, offline: a local capture server stands in for an OpenTelemetry
collector.

    python examples/telemetry_otlp.py

Decodes the protobuf that arrived and prints the GenAI spans and metrics.
"""

from __future__ import annotations

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

import pipeclient
from pipeclient.testing import CaptureServer, MockBackend


def main() -> None:
    with CaptureServer() as collector:
        telemetry = {"otlp": [{"name": "local", "enabled": True, "endpoint": collector.url}]}
        client = pipeclient.Client(backends=[MockBackend().backend()], telemetry=telemetry)
        with client.trace("support-answer"):
            client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": "Where is my order 1234?"}],
            )
        client.close()
        for request in collector.requests_to("/v1/traces"):
            message = ExportTraceServiceRequest()
            message.ParseFromString(request.content)
            for resource in message.resource_spans:
                for scope in resource.scope_spans:
                    for span in scope.spans:
                        print(f"span {span.name!r} trace {span.trace_id.hex()}")
                        for attribute in span.attributes:
                            value = attribute.value
                            print(
                                f"  {attribute.key} = {getattr(value, value.WhichOneof('value'))}"
                            )
        for request in collector.requests_to("/v1/metrics"):
            metrics = ExportMetricsServiceRequest()
            metrics.ParseFromString(request.content)
            for resource in metrics.resource_metrics:
                for scope in resource.scope_metrics:
                    for metric in scope.metrics:
                        print(f"metric {metric.name} ({metric.unit})")


if __name__ == "__main__":
    main()
