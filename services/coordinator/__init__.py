"""The coordinator service: active-learning runs as persistent state machines."""
