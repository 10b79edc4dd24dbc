"""The chute command."""
