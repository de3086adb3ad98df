r"""Record the weights digest of a registered version that has none, after checking its archive.

    python jobs/trust.py models:/logoxpertnet/3                      # prints the digest, records nothing
    python jobs/trust.py models:/logoxpertnet/3 --sha256 <hex>       # records it, if the archive still has it

lxn loads a registered version only when the registry records the SHA-256 of its
`data/model.pt2` (tag `lxn.pt2_sha256`, written at registration). A version registered by an
older lxn, or one whose tag was removed, is refused. To trust it again: run this once to see the
digest of the archive as the artifact store holds it now (after the checks a load makes: only an
lxn pt2 model's files, no pickled payload), compare it with a record you trust (for example the
digest of the training run's checkpoint or of a copy you verified), then run it with `--sha256`.
A digest already recorded is never replaced.
Exit status: 0 recorded (or already recorded), 2 bad input, refused, or not confirmed yet.
"""

from __future__ import annotations

import argparse
import re
import sys

from lxn.cli import EXIT_BAD_INPUT, run_job


def main(argv: list[str] | None = None) -> int:
    return run_job(lambda: _trust(argv), _show)


def _show(done: tuple[str, int]) -> int:
    message, status = done
    print(message)
    return status


def _trust(argv: list[str] | None) -> tuple[str, int]:
    """What to print, and the exit status (EXIT_BAD_INPUT while the digest is not confirmed)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="the version: models:/<name>/<version> (an alias moves; name the version)")
    parser.add_argument("--sha256", help="the digest you checked; recorded only if the archive has it")
    parser.add_argument("--tracking-uri", default=None, help="MLflow store (default: MLFLOW_TRACKING_URI, then sqlite)")
    args = parser.parse_args(argv)
    from lxn import registry
    from lxn.tracking import artifact_sha256

    if not re.fullmatch(r"models:/[^/@]+/\d+", args.model):
        raise ValueError(f"name the version itself (models:/<name>/<version>), not {args.model!r}")
    if args.sha256 is not None and not re.fullmatch(r"[0-9a-f]{64}", args.sha256):
        raise ValueError("--sha256 must be 64 lower-case hex digits")
    versions = registry.Registry(args.tracking_uri)
    ref = versions.resolve(args.model)
    recorded = versions.tags(ref).get(registry.PT2_SHA256)
    actual = artifact_sha256(ref, args.tracking_uri, expected=recorded)  # a changed archive is refused here
    if recorded:
        return f"{ref.uri}: SHA-256 {actual} is recorded and matches its archive", 0
    if args.sha256 is None:
        return (f"{ref.uri}: data/model.pt2 has SHA-256 {actual}; nothing recorded. Compare it with a record you "
                f"trust, then run: python jobs/trust.py {ref.uri} --sha256 {actual}", EXIT_BAD_INPUT)
    if args.sha256 != actual:
        raise ValueError(f"{ref.uri}: its archive has SHA-256 {actual}, not the {args.sha256} you checked; "
                         "nothing recorded")
    versions.record_digest(ref, actual)
    return f"{ref.uri}: recorded SHA-256 {actual}; the version loads again", 0


if __name__ == "__main__":
    sys.exit(main())
