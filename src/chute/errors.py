"""The chute error tree. Domain code raises these; HTTP status mapping lives at the API edges.

    ChuteError
    ├── ConfigError                  bad config file: stops the service at start
    ├── Unauthenticated              401: no token, or one nobody issued (both APIs)
    ├── PolicyDenied                 403: authenticated, but a policy rule says no (both APIs)
    ├── ImageError                   image service rules (mapped to HTTP in images/api)
    │   ├── NotFound                 404
    │   ├── Forbidden                403  (read-only/reserved attribute, protected, policy)
    │   ├── Conflict                 409  (status CAS lost, duplicate id, unknown property)
    │   ├── Invalid                  400  (schema, paging, size mismatch)
    │   ├── TooLarge                 413  (image_size_cap, user_storage_quota)
    │   │   └── StorageFull          413  (ENOSPC/EFBIG, no datadir big enough)
    │   ├── UnsupportedFormat        415  (format mismatch, unsafe image, wrong media type)
    │   └── Gone                     410  (image deleted during upload)
    ├── TransferError                moving image bytes
    │   ├── DirectPathUnavailable    "try the next path": no metadata, unknown filesystem id,
    │   │                            outside mountpoint, missing/unreadable/not a regular file,
    │   │                            or a copy that failed before commit
    │   └── IntegrityError           "stop": size or hash mismatch of bytes we were sent
    ├── ComputeError                 compute agent rules (mapped to HTTP in compute/api)
    │   ├── ComputeNotFound          404  (keypair, metadata item, tag, instance action)
    │   ├── ComputeConflict          409  (duplicate keypair)
    │   ├── ComputeForbidden         403  (another user's keypairs without being admin)
    │   │   └── ComputeQuotaExceeded 403  (metadata items, keypairs: Nova's default quotas)
    │   ├── InstanceInvalidState     409  (an action the server's state does not allow)
    │   └── HypervisorUnavailable    the hypervisor (libvirtd) cannot be reached
    └── RemoteError                  a chute/Glance/Nova API answered with an error status
        └── RemoteUnavailable        no answer at all (connection refused, reset, timeout)

Errors carry fields, not just strings: `message` is rendered from a template so logs and
API bodies stay consistent.
"""

from __future__ import annotations


class ChuteError(Exception):
    """Root of every error chute raises on purpose."""

    template = "{detail}"

    def __init__(self, detail: str = "", **fields: object) -> None:
        self.detail = detail
        self.fields = fields
        super().__init__(self.message)

    @property
    def message(self) -> str:
        return self.template.format(detail=self.detail, **self.fields)


class ConfigError(ChuteError):
    """A configuration problem, named by file, section and option."""

    def __init__(self, path: str, section: str | None, option: str | None, problem: str) -> None:
        self.path, self.section, self.option, self.problem = path, section, option, problem
        where = path
        if section is not None:
            where += f": [{section}]"
        if option is not None:
            where += f" {option}"
        super().__init__(f"{where}: {problem}")


class Unauthenticated(ChuteError):
    """The request carries no valid token (auth_strategy tokens or keystone)."""


class PolicyDenied(ChuteError):
    """A policy rule (chute.auth.policy) refuses the caller this operation."""


class ImageError(ChuteError):
    """A request to the image service broke one of its rules."""


class NotFound(ImageError):
    pass


class Forbidden(ImageError):
    pass


class Conflict(ImageError):
    pass


class Invalid(ImageError):
    pass


class TooLarge(ImageError):
    pass


class StorageFull(TooLarge):
    pass


class UnsupportedFormat(ImageError):
    pass


class Gone(ImageError):
    pass


class TransferError(ChuteError):
    """Moving image bytes failed."""


class DirectPathUnavailable(TransferError):
    """The direct (shared filesystem) path cannot be used for this location: try the next one.

    `reason` is a short machine-friendly code (no_metadata, unknown_filesystem, outside_mountpoint,
    dot_dot, symlink_escape, missing_file, not_regular_file, not_readable, scheme_not_allowed,
    copy_failed, size_mismatch, hash_mismatch); `detail` is the sentence an operator reads.
    """

    template = "{detail}"

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        super().__init__(detail)


class IntegrityError(TransferError):
    """The bytes do not match the image's recorded size or hash."""


class ComputeError(ChuteError):
    """A request to the compute agent broke one of its rules."""


class ServerNotFound(ComputeError):
    pass


class FlavorNotFound(ComputeError):
    pass


class BadComputeRequest(ComputeError):
    pass


class ComputeNotFound(ComputeError):
    pass


class ComputeConflict(ComputeError):
    pass


class ComputeForbidden(ComputeError):
    pass


class ComputeQuotaExceeded(ComputeForbidden):
    pass


class InstanceInvalidState(ComputeError):
    """Nova's 409: `Cannot 'stop' instance U while it is in vm_state stopped`."""


class HypervisorUnavailable(ComputeError):
    """libvirtd does not answer: the message names the connection and the option."""


class RemoteError(ChuteError):
    """An API we called answered with an error status; `message` is what its body said."""

    template = "{detail}"

    def __init__(self, status: int, detail: str) -> None:
        self.status = status
        super().__init__(detail)


class RemoteUnavailable(RemoteError):
    """The API could not be reached or dropped the connection."""

    def __init__(self, detail: str) -> None:
        super().__init__(0, detail)
