"""The inference client: Client and AsyncClient, the OpenAI-shaped resources, backends,
the router (order, retries, failover), one call in flight, answers and streams.
"""
