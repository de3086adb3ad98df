"""Storage: URIs, listing, reading and writing on local disks and S3-compatible endpoints.

This is the only module in lxn that knows about boto3 and pyarrow filesystems. Everything else
passes URI strings around and calls the functions here, so the same code runs on a laptop
(`./data/flickr`) and on a cluster (`s3://bucket/datasets/flickr`).

URIs
    A URI is a local path (relative, absolute, or `file://`) or `s3://bucket/key`. Local paths are
    normalised to absolute path strings; S3 URIs are validated (AWS bucket naming rules, no NUL,
    key at most 1024 bytes) and kept exactly as given, scheme lower-cased: every legal S3 key is
    kept, `.`/`..` segments, `//`, spaces, `#`, `?` and `%` included (boto3 sends them as they are).
    A location lxn writes through pyarrow (`location`: report roots, checkpoints, prepared data)
    must not have `.`/`..` or empty segments, because pyarrow resolves or refuses them. Anything
    else, a one-slash typo such as `s3:/bucket/key` included, raises `InvalidURIError`, a
    `ValueError` whose message says what to write. So does a relative path whose first folder is
    a scheme name (`s3//bucket/key`, `gs/x`): `./s3/x` names such a local folder.

Endpoint and credentials
    The S3 endpoint is the `endpoint_url` argument, else `AWS_ENDPOINT_URL_S3`, else
    `AWS_ENDPOINT_URL`: the variables botocore itself honours (botocore/configprovider.py); this
    module resolves them once more only to key its client cache and to hand the same endpoint to
    pyarrow, which does not read them. Credentials are never read, stored or logged here: boto3 and
    pyarrow each take them from the standard AWS chain (environment, config files, instance role).
    With a custom endpoint, both use path-style addressing (`endpoint/bucket/key`), which every
    S3-compatible server (MinIO, Ceph, moto) supports without wildcard DNS.

Retries
    Request-level faults (throttling, 5xx, connection errors) are retried by botocore's
    `standard` mode with exponential backoff (`AWS_RETRY_MODE` / `AWS_MAX_ATTEMPTS` override the
    defaults below). What botocore cannot retry is a body that breaks while streaming, after the
    response headers arrived (a reset connection mid-object): `read_bytes` retries those itself.

Processes
    boto3 clients are cached per (process id, endpoint, region): creating one costs tens of
    milliseconds and a client must not cross `fork` or pickling, so a forked or Ray worker process
    simply builds its own on first use. Nothing in this module holds a client at import time.
"""

from __future__ import annotations

import logging
import os
import random
import re
import shutil
import stat
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:  # heavy imports stay lazy: `import lxn.storage` must not pull in boto3
    import pyarrow.fs

__all__ = [
    "InvalidURIError",
    "ObjectInfo",
    "normalize_uri",
    "location",
    "is_s3",
    "split_s3",
    "join",
    "relpath",
    "basename",
    "resolve_endpoint",
    "s3_client",
    "fetch",
    "FETCH_ERROR_KINDS",
    "clear_client_cache",
    "iter_objects",
    "iter_prefixes",
    "read_bytes",
    "read_text",
    "write_bytes",
    "write_text",
    "exists",
    "check_writable",
    "check_listable",
    "check_readable",
    "object_info",
    "delete",
    "delete_prefix",
    "move_prefix",
    "remove_debris",
    "read_versioned",
    "put_if_absent",
    "put_if_match",
    "delete_if_match",
    "arrow_filesystem",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

# botocore client settings. Ten attempts ride out S3's "SlowDown" bursts during wide parallel
# fetches; the read timeout bounds a stalled connection, not a large object (it is per socket read).
RETRY_MODE = "standard"
MAX_ATTEMPTS = 10
CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 60.0
# Threads of one process share a client; the default pool of 10 would serialise a fetch pool.
MAX_POOL_CONNECTIONS = 64
# Our own retries of a body that broke mid-stream (see module docstring).
STREAM_ATTEMPTS = 4
STREAM_BACKOFF_S = 0.2

_S3_SCHEME = "s3://"
_FILE_SCHEME = "file://"
_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
# `s3:/bucket`, `s3:bucket`, `file:/x`: a URI scheme without its `//` is a typo, not a local path.
_TYPO_RE = re.compile(r"^(s3|s3a|s3n|gs|gcs|file|http|https|az|abfs|abfss|hdfs|models|runs):(?!//)", re.I)
# `s3//bucket/key`, `s3/bucket/key`: a relative path whose first folder is a scheme name is a
# typo far more often than a folder of that name (write `./s3/...` to mean one).
_SCHEME_FOLDERS = frozenset({"s3", "s3a", "s3n", "gs", "gcs", "az", "abfs", "abfss", "hdfs", "http", "https", "file"})
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_IP_RE = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")
_BUCKET_BAD_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_BUCKET_BAD_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")
_MAX_KEY_BYTES = 1024


class InvalidURIError(ValueError):
    """A URI that lxn cannot or will not use; the message says why and what to write instead."""


# --------------------------------------------------------------------------------------------
# URIs
# --------------------------------------------------------------------------------------------


def _check_bucket(bucket: str, uri: str) -> None:
    # AWS rules for general purpose buckets:
    # https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html
    problem = None
    if not bucket:
        problem = "the bucket name is empty"
    elif not _BUCKET_RE.match(bucket):
        problem = (
            "bucket names are 3-63 characters of a-z, 0-9, '.' and '-', "
            "starting and ending with a letter or digit"
        )
    elif ".." in bucket:
        problem = "bucket names cannot contain two adjacent periods"
    elif _IP_RE.match(bucket):
        problem = "bucket names cannot look like an IP address"
    elif bucket.startswith(_BUCKET_BAD_PREFIXES) or bucket.endswith(_BUCKET_BAD_SUFFIXES):
        problem = "bucket names cannot use the reserved prefixes/suffixes xn--, sthree-, -s3alias, --ol-s3, ..."
    if problem:
        raise InvalidURIError(f"invalid S3 URI {uri!r}: {problem} (expected s3://bucket/key)")


def _check_key(key: str, uri: str) -> None:
    if len(key.encode("utf-8", "surrogatepass")) > _MAX_KEY_BYTES:
        raise InvalidURIError(f"invalid S3 URI {uri!r}: keys are at most {_MAX_KEY_BYTES} bytes in UTF-8")


def _as_str(uri: str | os.PathLike[str]) -> str:
    if isinstance(uri, os.PathLike):
        uri = os.fspath(uri)
    if not isinstance(uri, str):
        raise InvalidURIError(f"a URI must be a string or a path, got {type(uri).__name__}")
    if not uri:
        raise InvalidURIError("empty URI: give a local path or s3://bucket/key")
    if "\x00" in uri:
        raise InvalidURIError(f"invalid URI {uri!r}: it contains a NUL byte")
    return uri


def normalize_uri(uri: str | os.PathLike[str]) -> str:
    """The canonical form of `uri`: an absolute local path, or a validated `s3://bucket/key`.

    Relative paths are made absolute against the current directory (a leading `~` is expanded,
    `..` collapsed, symlinks not resolved);
    `file:///abs/path` (percent-encoded, host empty or `localhost`) becomes `/abs/path`. An S3 URI
    keeps its key exactly, including a trailing `/`, since S3 keys are not paths.
    """
    text = _as_str(uri)
    match = _SCHEME_RE.match(text)
    if match is None:
        typo = _TYPO_RE.match(text)
        if typo:
            scheme = typo.group(1).lower()
            rest = text[typo.end():].lstrip("/")
            meant = f"file:///{rest}" if scheme == "file" else f"{scheme}://{rest}"
            raise InvalidURIError(
                f"invalid URI {text!r}: {scheme}: must be followed by // (write {meant}); "
                f"a local path cannot start with '{scheme}:'"
            )
        first = re.split(r"[/\\]", text, maxsplit=1)[0]
        if first.lower() in _SCHEME_FOLDERS:
            rest = text[len(first):].lstrip("/\\")
            raise InvalidURIError(
                f"invalid URI {text!r}: it reads as a local folder named {first!r}, most likely a typo for "
                f"{first.lower()}://{rest}; to mean the local folder, write ./{text}"
            )
        return os.path.abspath(os.path.expanduser(text))
    scheme = match.group(1).lower()
    rest = text[match.end() :]
    if scheme == "s3":
        bucket, _, key = rest.partition("/")
        canonical = _S3_SCHEME + rest
        _check_bucket(bucket, text)
        _check_key(key, text)
        return canonical
    if scheme == "file":
        host, slash, path = rest.partition("/")
        if host not in ("", "localhost") or not slash:
            raise InvalidURIError(f"invalid file URI {text!r}: write file:///absolute/path (no host)")
        path = urllib.parse.unquote("/" + path)
        if "\x00" in path:
            raise InvalidURIError(f"invalid URI {text!r}: it contains a NUL byte")
        return os.path.abspath(path)
    hint = " (write s3:// for any S3-compatible store)" if scheme in ("s3a", "s3n") else ""
    raise InvalidURIError(
        f"unsupported URI scheme {scheme + '://'!r} in {text!r}: lxn reads local paths, file:// and s3://{hint}"
    )


def location(uri: str | os.PathLike[str]) -> str:
    """`normalize_uri`, for a place lxn writes and reads through pyarrow (a report root, a
    checkpoint root, a prepared dataset): S3 keys with `.`, `..` or empty segments are refused,
    since pyarrow resolves `..` (reading another object than named) and refuses `//`."""
    canonical = normalize_uri(uri)
    if canonical.startswith(_S3_SCHEME):
        bucket, key = split_s3(canonical)
        segments = key.rstrip("/").split("/") if key.rstrip("/") else []
        if any(s in ("", ".", "..") for s in segments):
            raise InvalidURIError(
                f"{canonical!r} cannot be an lxn location: its key has an empty, '.' or '..' segment, "
                "which pyarrow would resolve or refuse; name the prefix without them"
            )
    return canonical


def is_s3(uri: str | os.PathLike[str]) -> bool:
    """True for an `s3://` URI (validated), False for a local path."""
    return normalize_uri(uri).startswith(_S3_SCHEME)


def split_s3(uri: str | os.PathLike[str]) -> tuple[str, str]:
    """`s3://bucket/a/b` -> `("bucket", "a/b")`; the key may be empty."""
    canonical = normalize_uri(uri)
    if not canonical.startswith(_S3_SCHEME):
        raise InvalidURIError(f"{canonical!r} is a local path, not an s3:// URI")
    bucket, _, key = canonical[len(_S3_SCHEME) :].partition("/")
    return bucket, key


def join(uri: str | os.PathLike[str], *parts: str) -> str:
    """`uri` with relative `parts` appended, `/`-separated; the result is normalised.

    On S3 the parts are appended exactly (a key is a name, not a path: `a/../b` and `a//b` are
    keys of their own, and no key can leave its bucket). On a local disk `..` is resolved and
    the result must stay below `uri`, so a name that came from data (a class folder, a file name
    in a split list or a manifest) can never escape it.
    """
    base = normalize_uri(uri)
    pieces: list[str] = []
    for part in parts:
        part = _as_str(part)
        if _TYPO_RE.match(part):
            normalize_uri(part)  # raises, saying what was meant
        if part.startswith("/") or _SCHEME_RE.match(part):
            raise InvalidURIError(f"cannot join {part!r} to {base!r}: parts must be relative")
        if not part.strip("/"):
            raise InvalidURIError(f"cannot join an empty part to {base!r}")
        pieces.append(part)
    if not pieces:
        return base
    if base.startswith(_S3_SCHEME):
        bucket, key = split_s3(base)
        return normalize_uri(f"{_S3_SCHEME}{bucket}/{_dir_key(key)}{'/'.join(pieces)}")
    joined = os.path.normpath(os.path.join(base, *(p.strip("/") for p in pieces)))
    root = base.rstrip(os.sep) or os.sep
    if joined != root and not joined.startswith(root.rstrip(os.sep) + os.sep):
        raise InvalidURIError(f"{'/'.join(pieces)!r} escapes {base!r} ('..' leads out of it)")
    return joined


def _dir_key(key: str) -> str:
    """An S3 key used as a directory prefix: `a/b` -> `a/b/`, `` stays `` (whole bucket)."""
    return key if not key or key.endswith("/") else key + "/"


def relpath(uri: str | os.PathLike[str], root: str | os.PathLike[str]) -> str:
    """The `/`-separated path of `uri` below directory `root` (both local or both S3)."""
    child, base = normalize_uri(uri), normalize_uri(root)
    if base.startswith(_S3_SCHEME):
        prefix = _S3_SCHEME + "/".join(split_s3(base))
        prefix = prefix if prefix.endswith("/") else prefix + "/"
    else:
        prefix = base.rstrip(os.sep) + os.sep
    if not child.startswith(prefix) or child == prefix:
        raise ValueError(f"{child!r} is not below {base!r}")
    rel = child[len(prefix) :]
    return rel if os.sep == "/" or child.startswith(_S3_SCHEME) else rel.replace(os.sep, "/")


def basename(uri: str | os.PathLike[str]) -> str:
    """The last segment of `uri`, ignoring a trailing `/` (`s3://b/cls/` -> `cls`)."""
    canonical = normalize_uri(uri)
    if canonical.startswith(_S3_SCHEME):
        return canonical[len(_S3_SCHEME) :].rstrip("/").rsplit("/", 1)[-1]
    return os.path.basename(canonical.rstrip(os.sep))


# --------------------------------------------------------------------------------------------
# Endpoint and clients
# --------------------------------------------------------------------------------------------


def _redact(url: str | None) -> str:
    """An endpoint URL fit for a log line: any `user:password@` is dropped."""
    if not url:
        return "<aws default>"
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def resolve_endpoint(endpoint_url: str | None = None) -> str | None:
    """The S3 endpoint URL in effect: the argument, else `AWS_ENDPOINT_URL_S3`, else
    `AWS_ENDPOINT_URL` (botocore's own precedence), else None for AWS itself."""
    url = endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None
    if url is None:
        return None
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"S3 endpoint {_redact(url)!r} must be http(s)://host[:port]")
    if parts.username or parts.password:
        raise ValueError(
            f"S3 endpoint {_redact(url)}: do not put credentials in the endpoint URL; "
            "use AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or an AWS profile"
        )
    return url.rstrip("/")


def _region() -> str | None:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None


def _retry_settings() -> tuple[str, int]:
    mode = os.environ.get("AWS_RETRY_MODE") or RETRY_MODE
    if mode not in ("legacy", "standard", "adaptive"):
        raise ValueError(f"AWS_RETRY_MODE={mode!r}: expected standard, adaptive or legacy")
    raw = os.environ.get("AWS_MAX_ATTEMPTS") or str(MAX_ATTEMPTS)
    try:
        attempts = int(raw)
    except ValueError:
        raise ValueError(f"AWS_MAX_ATTEMPTS={raw!r}: expected a positive integer") from None
    if attempts < 1:
        raise ValueError(f"AWS_MAX_ATTEMPTS={raw!r}: expected a positive integer")
    return mode, attempts


_clients: dict[tuple[int, str | None, str | None], Any] = {}
_clients_lock = threading.Lock()


def s3_client(endpoint_url: str | None = None) -> Any:
    """A boto3 S3 client for `endpoint_url` (see `resolve_endpoint`), cached per process.

    Safe to share between threads; never pass it to another process (a forked or unpickled copy
    would share sockets): each process builds its own on first call.
    """
    endpoint = resolve_endpoint(endpoint_url)
    region = _region()
    key = (os.getpid(), endpoint, region)
    client = _clients.get(key)
    if client is not None:
        return client
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            import boto3
            from botocore.config import Config

            mode, attempts = _retry_settings()
            config = Config(
                retries={"mode": mode, "total_max_attempts": attempts},  # attempts incl. the first
                connect_timeout=CONNECT_TIMEOUT_S,
                read_timeout=READ_TIMEOUT_S,
                max_pool_connections=MAX_POOL_CONNECTIONS,
                # Custom endpoints: path-style, as pyarrow does with endpoint_override.
                s3={"addressing_style": "path"} if endpoint else None,
            )
            # A private session: boto3's default session is not thread-safe.
            client = boto3.session.Session().client("s3", endpoint_url=endpoint, region_name=region, config=config)
            # Entries of other processes (inherited through fork) are dead weight: drop them.
            for stale in [k for k in _clients if k[0] != key[0]]:
                del _clients[stale]
            _clients[key] = client
            log.debug("created S3 client for %s (retries: %s x%d)", _redact(endpoint), mode, attempts)
    return client


def clear_client_cache() -> None:
    """Forget cached clients (after changing AWS_* settings in this process)."""
    with _clients_lock:
        _clients.clear()


def _error_code(error: Exception) -> str:
    response = getattr(error, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _translate(error: Exception, uri: str) -> Exception:
    """A botocore ClientError as the Python exception a caller expects, naming the URI."""
    code = _error_code(error)
    if code in ("NoSuchKey", "404", "NotFound"):
        return FileNotFoundError(f"no such object: {uri}")
    if code == "NoSuchBucket":
        return FileNotFoundError(f"no such bucket for {uri}")
    if code in ("AccessDenied", "403", "Forbidden", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
        return PermissionError(f"access denied to {uri} ({code}): check the credentials and policy for this bucket")
    return OSError(f"S3 error on {uri}: {code or type(error).__name__}: {error}")


def _s3_call(uri: str, fn: Callable[[], T]) -> T:
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    try:
        return fn()
    except ClientError as error:
        raise _translate(error, uri) from None
    except NoCredentialsError:
        raise PermissionError(f"no AWS credentials for {uri}: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
                              "a profile, or an instance role") from None
    except BotoCoreError as error:  # endpoint unreachable, timeouts after botocore's own retries
        raise OSError(f"cannot reach S3 for {uri} (endpoint {_redact(resolve_endpoint())}): {error}") from None


def _streaming_errors() -> tuple[type[Exception], ...]:
    from botocore.exceptions import IncompleteReadError, ReadTimeoutError, ResponseStreamingError
    from urllib3.exceptions import ProtocolError

    return (ResponseStreamingError, IncompleteReadError, ReadTimeoutError, ProtocolError)


# --------------------------------------------------------------------------------------------
# Listing
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ObjectInfo:
    """One object or file.

    `etag` is S3's ETag without quotes (an MD5 for single-part uploads, `<md5>-<parts>` otherwise).
    For a local file it is `"<size hex>-<mtime_ns hex>"`: not a content hash, but it changes
    whenever the file is rewritten, which is what incremental scans need, and costs no read.
    `last_modified` is timezone-aware UTC.
    """

    uri: str
    size: int
    etag: str
    last_modified: datetime


def _extension_filter(extensions: Iterable[str] | None) -> tuple[str, ...] | None:
    if extensions is None:
        return None
    if isinstance(extensions, str):
        extensions = [extensions]
    suffixes = tuple("." + e.lower().lstrip(".") for e in extensions)
    if any(s == "." for s in suffixes):
        raise ValueError("empty extension in the extension filter")
    return suffixes


def _local_info(path: str, st: os.stat_result) -> ObjectInfo:
    return ObjectInfo(
        uri=path,
        size=st.st_size,
        etag=f"{st.st_size:x}-{st.st_mtime_ns:x}",
        last_modified=datetime.fromtimestamp(st.st_mtime_ns / 1e9, tz=timezone.utc),
    )


def _walk_local(directory: str) -> Iterator[ObjectInfo]:
    # Entries sorted by name, directories as "name/": exactly S3's order of the full keys
    # ("a.jpg" < "a/x.jpg" because "." < "/"), so both backends list identically.
    # Symlinked directories are not followed (no cycles); symlinked files are.
    with os.scandir(directory) as it:
        entries = []
        for entry in it:
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                continue
            entries.append((entry.name + "/" if is_dir else entry.name, is_dir, entry))
    entries.sort(key=lambda e: e[0])
    for _, is_dir, entry in entries:
        if is_dir:
            yield from _walk_local(entry.path)
            continue
        try:
            st = entry.stat()
        except FileNotFoundError:  # removed while we walked, or a dangling link
            continue
        if stat.S_ISREG(st.st_mode):
            yield _local_info(entry.path, st)


def _require_dir(path: str) -> None:
    if os.path.isdir(path):
        return
    if os.path.exists(path):
        raise NotADirectoryError(f"{path} is a file; listing needs a directory (its parent?)")
    raise FileNotFoundError(f"no such directory: {path}")


def iter_objects(
    uri: str | os.PathLike[str],
    *,
    extensions: Iterable[str] | None = None,
    min_size: int = 0,
    max_size: int | None = None,
    page_size: int = 1000,
) -> Iterator[ObjectInfo]:
    """Every object below directory/prefix `uri`, recursively, in lexicographic key order.

    Streams: S3 pages of `page_size` keys are requested as the caller consumes them, local
    directories are read one at a time, so a listing of millions never sits in memory.
    `uri` is a directory (`s3://b/images` lists `images/...`, not `images2/...`); a missing local
    directory raises FileNotFoundError, an empty S3 prefix yields nothing. `extensions`
    (`".jpg"` or `"jpg"`) match case-insensitively; sizes are bytes, `max_size` inclusive.
    Every key is listed as it is (dot segments, `//`, spaces, any UTF-8).
    """
    suffixes = _extension_filter(extensions)

    def keep(name: str, size: int) -> bool:
        if suffixes is not None and not name.lower().endswith(suffixes):
            return False
        return size >= min_size and (max_size is None or size <= max_size)

    root = normalize_uri(uri)
    if not root.startswith(_S3_SCHEME):
        _require_dir(root)
        for info in _walk_local(root):
            if keep(info.uri, info.size):
                yield info
        return

    bucket, key = split_s3(root)
    client = s3_client()
    paginator = client.get_paginator("list_objects_v2")
    pages = paginator.paginate(Bucket=bucket, Prefix=_dir_key(key), PaginationConfig={"PageSize": page_size})
    for page in _s3_pages(root, pages):
        for item in page.get("Contents", ()):
            if keep(item["Key"], item["Size"]):
                object_uri = f"{_S3_SCHEME}{bucket}/{item['Key']}"
                yield ObjectInfo(object_uri, item["Size"], item.get("ETag", "").strip('"'), item["LastModified"])


def _s3_pages(uri: str, pages: Iterable[dict]) -> Iterator[dict]:
    iterator = iter(pages)
    while True:
        try:
            page = _s3_call(uri, lambda: next(iterator))
        except StopIteration:
            return
        yield page


def iter_prefixes(uri: str | os.PathLike[str], *, page_size: int = 1000) -> Iterator[str]:
    """The immediate sub-directories of `uri`, sorted: local directory paths, or S3 common
    prefixes as `s3://bucket/prefix/child/` (trailing `/`). Hidden names are not filtered."""
    root = normalize_uri(uri)
    if not root.startswith(_S3_SCHEME):
        _require_dir(root)
        with os.scandir(root) as it:
            names = sorted(e.name for e in it if e.is_dir(follow_symlinks=False))
        for name in names:
            yield os.path.join(root, name)
        return
    bucket, key = split_s3(root)
    paginator = s3_client().get_paginator("list_objects_v2")
    pages = paginator.paginate(
        Bucket=bucket, Prefix=_dir_key(key), Delimiter="/", PaginationConfig={"PageSize": page_size}
    )
    for page in _s3_pages(root, pages):
        for prefix in page.get("CommonPrefixes", ()):
            yield f"{_S3_SCHEME}{bucket}/{prefix['Prefix']}"


# --------------------------------------------------------------------------------------------
# Reading and writing
# --------------------------------------------------------------------------------------------


def _object_key(uri: str) -> tuple[str, str]:
    bucket, key = split_s3(uri)
    if not key or key.endswith("/"):
        raise InvalidURIError(f"{uri!r} names a prefix, not an object: add the object's key")
    return bucket, key


def read_bytes(uri: str | os.PathLike[str]) -> bytes:
    """The whole content of `uri`. Missing -> FileNotFoundError naming the URI; a body that
    breaks mid-stream is fetched again (up to STREAM_ATTEMPTS times, with jittered backoff)."""
    target = normalize_uri(uri)
    if not target.startswith(_S3_SCHEME):
        with open(target, "rb") as f:
            return f.read()
    bucket, key = _object_key(target)
    client = s3_client()
    transient = _streaming_errors()
    for attempt in range(1, STREAM_ATTEMPTS + 1):
        response = _s3_call(target, lambda: client.get_object(Bucket=bucket, Key=key))
        body = response["Body"]  # not `with body`: its __enter__ returns the raw urllib3 stream,
        try:                     # whose errors botocore's StreamingBody.read would translate
            return body.read()
        except transient as error:
            if attempt == STREAM_ATTEMPTS:
                raise OSError(f"reading {target} failed {attempt} times while streaming: {error}") from error
            delay = STREAM_BACKOFF_S * 2 ** (attempt - 1) * (0.5 + random.random())
            log.warning(
                "reading %s broke mid-stream (%s); retry %d in %.2fs", target, type(error).__name__, attempt, delay
            )
            time.sleep(delay)
        finally:
            body.close()
    raise AssertionError("unreachable")


# What `fetch` calls an object it could not read (the scan's and prepare's error rows).
FETCH_ERROR_KINDS: dict[str, str] = {
    "missing": "the object was listed but is gone (deleted between listing and fetch)",
    "forbidden": "access denied to the object",
    "unreadable": "the fetch failed after retries (network, throttling, server errors)",
}


def fetch(uri: str) -> tuple[bytes | None, str | None, str | None]:
    """`read_bytes` for batch pipelines (the scan, prepare): (bytes, None, None), or (None, kind,
    reason) with kind `missing`, `forbidden` or `unreadable` (after the retries): one object that
    cannot be read is one error row, never a failed job."""
    try:
        return read_bytes(uri), None, None
    except FileNotFoundError as error:
        return None, "missing", str(error)
    except PermissionError as error:
        return None, "forbidden", str(error)
    except Exception as error:  # noqa: BLE001 - network, throttling, a directory: this object, not the job
        return None, "unreadable", f"{type(error).__name__}: {error}"


def read_text(uri: str | os.PathLike[str]) -> str:
    """`uri` decoded as UTF-8; a leading BOM is dropped. Invalid UTF-8 raises ValueError naming it."""
    data = read_bytes(uri)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        where = f"{error.reason} at byte {error.start}"
        raise ValueError(f"{normalize_uri(uri)} is not valid UTF-8 text ({where})") from None


_umask_value: int | None = None
_umask_lock = threading.Lock()


def _umask() -> int:
    # The process umask can only be read by setting it; do that once, under a lock.
    global _umask_value
    if _umask_value is None:
        with _umask_lock:
            if _umask_value is None:
                current = os.umask(0o022)
                os.umask(current)
                _umask_value = current
    return _umask_value


def write_bytes(uri: str | os.PathLike[str], data: bytes, *, content_type: str | None = None) -> None:
    """Write `data` to `uri`, replacing it. Local writes create parent directories and are atomic:
    a temporary file in the same directory is fsynced then renamed over the target, so readers see
    the old or the new content, never a part, and a failed write leaves nothing behind.
    S3 PUTs are atomic by nature; `content_type` is the object's Content-Type there (a browser
    opens `text/html` from a bucket, and downloads S3's default binary type)."""
    target = normalize_uri(uri)
    data = bytes(data) if not isinstance(data, bytes) else data
    if target.startswith(_S3_SCHEME):
        bucket, key = _object_key(target)
        client = s3_client()
        extra = {"ContentType": content_type} if content_type else {}
        _s3_call(target, lambda: client.put_object(Bucket=bucket, Key=key, Body=data, **extra))
        return
    directory, name = os.path.split(target)
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
            # mkstemp creates 0600; give the file the mode a plain open() would have.
            os.fchmod(f.fileno(), 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_text(uri: str | os.PathLike[str], text: str, *, content_type: str | None = None) -> None:
    """Write `text` as UTF-8 (no BOM); see `write_bytes`."""
    write_bytes(uri, text.encode("utf-8"), content_type=content_type)


def exists(uri: str | os.PathLike[str]) -> bool:
    """True if an object (S3) or a regular file (local) exists at `uri`; directories and
    prefixes do not count (use `iter_objects` to look inside them)."""
    target = normalize_uri(uri)
    if not target.startswith(_S3_SCHEME):
        return os.path.isfile(target)
    bucket, key = split_s3(target)
    if not key or key.endswith("/"):
        return False
    client = s3_client()
    try:
        _s3_call(target, lambda: client.head_object(Bucket=bucket, Key=key))
    except FileNotFoundError:
        return False
    return True


def check_writable(uri: str | os.PathLike[str], what: str = "output") -> str:
    """Fail fast, before a job does any work, if nothing can be written below directory/prefix
    `uri` (a missing bucket, no credentials, a file in the way, a read-only disk); returns the
    location. On S3 one small probe object is written and deleted; on a local disk nothing is
    created: the nearest existing directory must be writable."""
    import uuid

    root = location(uri)
    try:
        if root.startswith(_S3_SCHEME):
            probe = join(root, f"_lxn-write-probe-{uuid.uuid4().hex[:12]}")
            write_bytes(probe, b"ok")
            delete(probe)
        else:
            existing = root
            while not os.path.exists(existing):
                existing = os.path.dirname(existing)
            if not os.path.isdir(existing):
                raise NotADirectoryError(f"{existing} is a file")
            if not os.access(existing, os.W_OK | os.X_OK):
                raise PermissionError(f"{existing} is not writable")
    except (OSError, ValueError) as exc:
        raise OSError(f"cannot write the {what} to {root}: {exc}") from None
    return root


def check_listable(uri: str | os.PathLike[str], what: str = "input") -> str:
    """Fail fast, before a job does any work, if directory/prefix `uri` cannot be listed (a
    missing directory or bucket, no permission); returns it. An empty S3 prefix can be listed."""
    root = normalize_uri(uri)
    try:
        if root.startswith(_S3_SCHEME):
            bucket, key = split_s3(root)
            client = s3_client()
            _s3_call(root, lambda: client.list_objects_v2(Bucket=bucket, Prefix=_dir_key(key), MaxKeys=1))
        else:
            _require_dir(root)
            with os.scandir(root) as entries:
                next(entries, None)
    except OSError as exc:
        raise OSError(f"cannot list the {what} {root}: {exc}") from None
    return root


def check_readable(uri: str | os.PathLike[str], what: str = "input") -> str:
    """Fail fast if the object or file at `uri` cannot be read (missing, a directory, no
    permission); returns it. On S3 one HEAD request (which needs the same s3:GetObject permission)."""
    target = normalize_uri(uri)
    try:
        if target.startswith(_S3_SCHEME):
            object_info(target)
        else:
            with open(target, "rb") as f:
                f.read(1)
    except OSError as exc:
        raise OSError(f"cannot read the {what} {target}: {exc}") from None
    return target


def object_info(uri: str | os.PathLike[str]) -> ObjectInfo:
    """The `ObjectInfo` of one object or regular file, as `iter_objects` would list it (one HEAD
    request on S3, no body). Missing -> FileNotFoundError naming the URI."""
    target = normalize_uri(uri)
    if not target.startswith(_S3_SCHEME):
        st = os.stat(target)
        if not stat.S_ISREG(st.st_mode):
            raise IsADirectoryError(f"{target} is not a regular file")
        return _local_info(target, st)
    bucket, key = _object_key(target)
    client = s3_client()
    head = _s3_call(target, lambda: client.head_object(Bucket=bucket, Key=key))
    return ObjectInfo(target, int(head["ContentLength"]), head.get("ETag", "").strip('"'), head["LastModified"])


def delete(uri: str | os.PathLike[str]) -> None:
    """Delete the object or file at `uri`; deleting what does not exist is not an error."""
    target = normalize_uri(uri)
    if target.startswith(_S3_SCHEME):
        bucket, key = _object_key(target)
        client = s3_client()
        _s3_call(target, lambda: client.delete_object(Bucket=bucket, Key=key))
        return
    try:
        os.unlink(target)
    except FileNotFoundError:
        pass


_TEMPORARY_RE = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$")  # what write_bytes' mkstemp names look like


def remove_debris(uri: str | os.PathLike[str]) -> int:
    """Below local directory `uri`: delete the temporary files of writes that a killed process
    never finished (`write_bytes` names them `.<name>.<random>.tmp`), then every empty directory
    below it (`uri` itself stays). Returns how many files went. S3 writes leave no debris: a no-op.
    Only for directories that no live process is writing to."""
    root = normalize_uri(uri)
    if root.startswith(_S3_SCHEME) or not os.path.isdir(root):
        return 0
    removed = 0
    for directory, _subdirs, files in os.walk(root, topdown=False):
        for name in files:
            if _TEMPORARY_RE.match(name):
                try:
                    os.unlink(os.path.join(directory, name))
                    removed += 1
                except FileNotFoundError:
                    pass
        if directory != root:
            try:
                os.rmdir(directory)  # only succeeds when empty
            except OSError:
                pass
    return removed


def delete_prefix(uri: str | os.PathLike[str]) -> int:
    """Delete everything below directory/prefix `uri`; returns how many objects/files went.

    Refuses a bucket root or a filesystem root: that is never what a job means.
    """
    target = normalize_uri(uri)
    if not target.startswith(_S3_SCHEME):
        if os.path.dirname(target) == target:
            raise ValueError(f"refusing to delete the filesystem root {target!r}")
        if not os.path.isdir(target):
            return 0
        count = sum(1 for _ in _walk_local(target))
        shutil.rmtree(target)
        return count
    bucket, key = split_s3(target)
    if not key.strip("/"):
        raise ValueError(f"refusing to delete a whole bucket ({target!r}): name a prefix inside it")
    client = s3_client()
    count = 0
    batch: list[dict[str, str]] = []

    def flush() -> None:
        request = {"Objects": batch, "Quiet": True}
        response = _s3_call(target, lambda: client.delete_objects(Bucket=bucket, Delete=request))
        errors = response.get("Errors") or []
        if errors:
            first = errors[0]
            example = f"{first.get('Key')}: {first.get('Code')}"
            raise OSError(f"could not delete {len(errors)} objects under {target}, e.g. {example}")

    for info in iter_objects(target):
        batch.append({"Key": split_s3(info.uri)[1]})
        if len(batch) == 1000:  # the DeleteObjects limit
            flush()
            count += len(batch)
            batch = []
    if batch:
        flush()
        count += len(batch)
    return count


# --------------------------------------------------------------------------------------------
# pyarrow
# --------------------------------------------------------------------------------------------


def move_prefix(uri: str | os.PathLike[str], target: str | os.PathLike[str]) -> int:
    """Move everything below directory/prefix `uri` to `target` (which must not exist yet); returns
    how many objects/files moved. Local: one rename. S3: a copy of each object, then the deletes."""
    source, destination = normalize_uri(uri), normalize_uri(target)
    if source.startswith(_S3_SCHEME) != destination.startswith(_S3_SCHEME):
        raise ValueError(f"cannot move {source} to {destination}: both must be local or both S3")
    if not source.startswith(_S3_SCHEME):
        if not os.path.isdir(source):
            return 0
        count = sum(1 for _ in _walk_local(source))
        os.makedirs(os.path.dirname(destination), exist_ok=True)
        os.rename(source, destination)
        return count
    bucket, _ = split_s3(source)
    target_bucket, target_key = split_s3(destination)
    client = s3_client()
    moved = 0
    for info in iter_objects(source):
        key = _dir_key(target_key) + relpath(info.uri, source)
        _, source_key = split_s3(info.uri)
        _s3_call(info.uri, lambda key=key, source_key=source_key: client.copy_object(
            Bucket=target_bucket, Key=key, CopySource={"Bucket": bucket, "Key": source_key}))
        moved += 1
    delete_prefix(source)
    return moved


# Conditional writes (S3's If-None-Match / If-Match): the building blocks of a lease. S3 only; a
# local lease uses the kernel's file locks instead (lxn.scan.lease).


def _conditional(uri: str, fn: Callable[[], T]) -> T | None:
    """`fn()`, or None when S3 refuses its precondition (412) or a concurrent conditional write won (409)."""
    try:
        return _s3_call(uri, lambda: _raising(fn))
    except _PreconditionFailed:
        return None


class _PreconditionFailed(Exception):
    pass


def _raising(fn: Callable[[], T]) -> T:
    from botocore.exceptions import ClientError

    try:
        return fn()
    except ClientError as error:
        if _error_code(error) in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409") \
                or (getattr(error, "response", {}) or {}).get("ResponseMetadata", {}).get("HTTPStatusCode") in (409, 412):
            raise _PreconditionFailed() from None
        raise


def read_versioned(uri: str | os.PathLike[str]) -> tuple[bytes, str]:
    """The object's bytes and its ETag (S3). Missing -> FileNotFoundError."""
    bucket, key = _object_key(normalize_uri(uri))
    client = s3_client()
    response = _s3_call(str(uri), lambda: client.get_object(Bucket=bucket, Key=key))
    return response["Body"].read(), response["ETag"]


def put_if_absent(uri: str | os.PathLike[str], data: bytes) -> str | None:
    """Create the object only if none exists at `uri`; its ETag, or None if one exists."""
    bucket, key = _object_key(normalize_uri(uri))
    client = s3_client()
    response = _conditional(str(uri), lambda: client.put_object(Bucket=bucket, Key=key, Body=data, IfNoneMatch="*"))
    return None if response is None else response["ETag"]


def put_if_match(uri: str | os.PathLike[str], data: bytes, etag: str) -> str | None:
    """Replace the object only if its ETag is still `etag`; the new ETag, or None if it changed or went."""
    bucket, key = _object_key(normalize_uri(uri))
    client = s3_client()
    try:
        response = _conditional(str(uri), lambda: client.put_object(Bucket=bucket, Key=key, Body=data, IfMatch=etag))
    except FileNotFoundError:
        return None
    return None if response is None else response["ETag"]


def delete_if_match(uri: str | os.PathLike[str], etag: str) -> bool:
    """Delete the object only if its ETag is still `etag`; whether it was deleted."""
    bucket, key = _object_key(normalize_uri(uri))
    client = s3_client()
    try:
        return _conditional(str(uri), lambda: client.delete_object(Bucket=bucket, Key=key, IfMatch=etag)) is not None
    except FileNotFoundError:
        return False


def arrow_filesystem(uri: str | os.PathLike[str]) -> tuple[pyarrow.fs.FileSystem, str]:
    """A pyarrow filesystem and the path inside it for `uri` (for Parquet and Ray Data I/O).

    S3 uses the endpoint of `resolve_endpoint()` and the same retry budget as the boto3 client;
    credentials come from the standard AWS chain inside pyarrow and are never put in the object
    (so pickling it for Ray workers carries none). Pickling drops `retry_strategy`: under Ray Data
    set `DataContext.retried_io_errors` as well. Without an endpoint or region, the bucket's region
    is asked from AWS once (`pyarrow.fs.resolve_s3_region`).
    """
    import pyarrow.fs

    target = normalize_uri(uri)
    if not target.startswith(_S3_SCHEME):
        return pyarrow.fs.LocalFileSystem(), target
    bucket, key = split_s3(target)
    endpoint = resolve_endpoint()
    region = _region()
    _, attempts = _retry_settings()
    kwargs: dict[str, Any] = {
        "connect_timeout": CONNECT_TIMEOUT_S,
        "request_timeout": READ_TIMEOUT_S,
        "retry_strategy": pyarrow.fs.AwsStandardS3RetryStrategy(max_attempts=attempts),
    }
    if endpoint:
        parts = urllib.parse.urlsplit(endpoint)
        kwargs.update(endpoint_override=parts.netloc + parts.path, scheme=parts.scheme, region=region or "us-east-1")
    else:
        kwargs["region"] = region or pyarrow.fs.resolve_s3_region(bucket)
    return pyarrow.fs.S3FileSystem(**kwargs), f"{bucket}/{key}".rstrip("/")
