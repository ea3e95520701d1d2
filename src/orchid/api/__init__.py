"""The REST API: HTTP mapping, authentication and authorization."""
