"""The errors verify raises for things a user can fix, each with its own exit code.

The CLI prints ``str(error)`` as one line and exits with ``error.exit_code``;
anything else is a bug and keeps its traceback.
"""


class VerifyError(Exception):
    """A problem the user can act on; the message says what and what to do."""

    exit_code = 1


class CaseError(VerifyError):
    """The case file is missing, not YAML, or does not follow the case schema."""

    exit_code = 3


class MediaError(VerifyError):
    """A video file cannot be used (not a video, no video stream, unreadable)."""

    exit_code = 4


class WorkspaceError(VerifyError):
    """The workspace is missing, from another case, or its state is unusable."""

    exit_code = 5


class WorkspaceBusy(WorkspaceError):
    """Another verify process holds the workspace lock."""

    exit_code = 6


class ServerError(VerifyError):
    """Label Studio could not be reached or answered with an error."""

    exit_code = 7


class AuthError(ServerError):
    """Label Studio refused the API key (401) or the action (403)."""

    exit_code = 8


class ProjectMissing(ServerError):
    """The workspace's Label Studio project is gone from the server."""

    exit_code = 9


class PartialFailure(VerifyError):
    """Some inputs of a run failed; the others completed."""

    exit_code = 10


class IntegrityError(VerifyError):
    """A stored artefact no longer matches what it was derived from."""

    exit_code = 11


class CustodyError(VerifyError):
    """The custody log is missing, damaged, edited or cut short."""

    exit_code = 12


class ManifestMissing(VerifyError):
    """There is no workspace database to check the stored files against."""

    exit_code = 13


class DiskFull(VerifyError):
    """The workspace's disk (or its quota) is full: nothing half-written is kept; free space and run again."""

    exit_code = 14


class OptionError(VerifyError):
    """A value given for one of a stage's options is not acceptable (a user's mistake, like a bad flag).

    ``option`` names the library parameter (e.g. ``side``, ``claims``); the CLI shows it as its flag.
    """

    exit_code = 2

    def __init__(self, option: str, message: str):
        super().__init__(f"{option}: {message}")
        self.option = option
        self.detail = message


class StorageError(VerifyError):
    """The S3-compatible object storage frames go to (--images s3) is unreachable, or its bucket is missing."""

    exit_code = 15


class StorageAuthError(StorageError):
    """The object storage refused the credentials (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN)."""

    exit_code = 16


class NotAcceptable(VerifyError):
    """``audit --accept`` was given a file that is not in the workspace, or not one the audit finds unlogged."""

    exit_code = 17


class RolledBack(CustodyError):
    """``audit --against REPORT``: the workspace no longer holds the custody head the report was built from (entries
    cut off), or holds another entry under its number (the log rewritten): the workspace was rolled back."""

    exit_code = 18
