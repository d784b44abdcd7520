"""Images: references, platforms, the registry client and pull."""
