"""The wire dialects. Each module owns its routes, request parsing and one error table; none knows another."""
