"""The InferenceService API: pydantic models that are the single source of truth."""
