"""The `pipeclient` command: init, telemetry status and preview, audit, chat."""
