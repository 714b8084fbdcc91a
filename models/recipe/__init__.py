"""Training recipe for the Vietnamese line recognizer (training-only code, not shipped)."""
