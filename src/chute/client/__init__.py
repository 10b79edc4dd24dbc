"""HTTP clients for both APIs, used by the CLI and by chute-compute."""
