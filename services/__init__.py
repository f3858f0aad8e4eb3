"""The kit's deployable services (gateway, rag) and what they share (`services.common`)."""
