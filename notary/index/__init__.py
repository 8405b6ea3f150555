"""The service's index: documents, their manifests, anchoring state and custody events."""
