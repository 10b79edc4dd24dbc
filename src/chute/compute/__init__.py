"""The compute agent (chute-compute): boots instances, fetching images through the shared
filesystem when it can."""
