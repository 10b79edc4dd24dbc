"""Moving and verifying image bytes: the only package that knows syscalls."""
