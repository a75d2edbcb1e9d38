"""PyKEEN integration for geoattn (interactions, models, training loops); populated by the KG work."""
