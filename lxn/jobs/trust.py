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

from lxn.cli import BAD_INPUT, configure_logging, fail


def main(argv: list[str] | None = None) -> int:
    configure_logging()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="the version: models:/<name>/<version> (an alias moves; name the version)")
    parser.add_argument("--sha256", help="the digest you checked; recorded only if the archive has it")
    parser.add_argument("--tracking-uri", default=None, help="MLflow store (default: MLFLOW_TRACKING_URI, then sqlite)")
    args = parser.parse_args(argv)
    from lxn.tracking import PT2_SHA256_TAG, artifact_sha256, record_digest, resolve_model_uri, version_tags

    try:
        if not re.fullmatch(r"models:/[^/@]+/\d+", args.model):
            raise ValueError(f"name the version itself (models:/<name>/<version>), not {args.model!r}")
        if args.sha256 is not None and not re.fullmatch(r"[0-9a-f]{64}", args.sha256):
            raise ValueError("--sha256 must be 64 lower-case hex digits")
        ref = resolve_model_uri(args.model, args.tracking_uri)
        recorded = version_tags(ref, args.tracking_uri).get(PT2_SHA256_TAG)
        actual = artifact_sha256(ref, args.tracking_uri, expected=recorded)  # a changed archive is refused here
        if recorded:
            print(f"{ref.uri}: SHA-256 {actual} is recorded and matches its archive")
            return 0
        if args.sha256 is None:
            print(f"{ref.uri}: data/model.pt2 has SHA-256 {actual}; nothing recorded. Compare it with a record you "
                  f"trust, then run: python jobs/trust.py {ref.uri} --sha256 {actual}")
            return 2
        if args.sha256 != actual:
            raise ValueError(f"{ref.uri}: its archive has SHA-256 {actual}, not the {args.sha256} you checked; "
                             "nothing recorded")
        record_digest(ref, actual, args.tracking_uri)
    except BAD_INPUT as exc:
        return fail(exc)
    print(f"{ref.uri}: recorded SHA-256 {actual}; the version loads again")
    return 0


if __name__ == "__main__":
    sys.exit(main())
