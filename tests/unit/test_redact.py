"""The one redaction rule: secrets planted in every URI setting of every job never survive it."""

from __future__ import annotations

import json
import logging
import string

from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from lxn.config import to_dict, uri_settings
from lxn.data.prepare import PrepareConfig
from lxn.evaluation.job import EvaluateConfig
from lxn.promote import PromoteConfig
from lxn.redact import MASK, RedactingFilter, redact, redact_text, redact_uri, register_secret
from lxn.scan.config import ScanConfig
from lxn.tracking import safe_params
from lxn.train.config import TrainConfig
from lxn.review.export import ExportConfig
from lxn.review.ingest import ImportConfig
from lxn.train.paper_report import ReportConfig

CONFIGS = [ScanConfig, TrainConfig, PrepareConfig, PromoteConfig, EvaluateConfig, ReportConfig, ExportConfig,
           ImportConfig]
secrets = st.text(alphabet=string.ascii_letters + string.digits + "-_.~", min_size=8, max_size=40)
# Where a secret can ride in a URI: a password, a query value (presigned URLs, tokens), a fragment.
PLANTS = [
    "s3://AKIAEXAMPLE:{s}@lxn-data/images/",
    "http://user:{s}/tail@mlflow.internal:5000/",   # an unencoded '/' in the password
    "http://user:{s}@more@mlflow.internal/",        # an '@' in the password
    "https://{s}@mlflow.internal/",                  # userinfo without a password (a token)
    "s3://lxn-data/images/#{s}",
    "s3://lxn-data/images/?X-Amz-Signature={s}",
    "s3://lxn-data/images/part?X-Amz-Security-Token={s}&X-Amz-Expires=60",
    "http://lxn:{s}@mlflow.internal:5000",
    "https://mlflow.internal/?token={s}",
    "https://user:{s}@host:8443/path?x=1#frag",
    "file:///data/x#{s}",
]


def test_every_job_declares_its_uri_settings():
    assert set(uri_settings(ScanConfig)) == {"source", "manifest", "out", "tracking_uri"}
    assert set(uri_settings(TrainConfig)) == {"data", "backbone_weights", "storage", "tracking_uri"}
    assert set(uri_settings(PrepareConfig)) == {"source", "out", "tracking_uri"}
    assert set(uri_settings(PromoteConfig)) == {"data", "labelled", "tracking_uri"}
    assert set(uri_settings(EvaluateConfig)) == {"data", "labelled", "out", "tracking_uri"}
    assert set(uri_settings(ReportConfig)) == {"out", "tracking_uri"}
    assert set(uri_settings(ExportConfig)) == {"scans", "out"}
    assert set(uri_settings(ImportConfig)) == {"export", "labels", "out"}


@settings(max_examples=60, deadline=None)
@given(secret=secrets, plant=st.sampled_from(PLANTS), config=st.sampled_from(CONFIGS))
@example(secret="tracking", plant=PLANTS[0], config=ScanConfig)  # a plain word of the output: skipped, not failed
@example(secret="hunter2hunter2", plant=PLANTS[0], config=ScanConfig)
def test_a_secret_in_any_uri_setting_reaches_no_output(secret, plant, config):
    def outputs(uri):
        planted = {name: [uri, "s3://lxn-data/clean/"] if name == "source" else uri for name in uri_settings(config)}
        settings_dict = to_dict(config(**planted))
        return [
            json.dumps(redact(settings_dict)),                     # summaries, _SUCCESS, intent
            json.dumps(safe_params(settings_dict)),                # MLflow params
            redact_text(f"scanning {uri} into {settings_dict}"),   # log lines and error messages
            redact_uri(uri),
        ]

    # A "secret" that is also a plain word of the output ("tracking", "images") proves nothing either way.
    assume(not any(secret in text for text in outputs(plant.format(s="x"))))
    for text in outputs(plant.format(s=secret)):
        assert secret not in text
    assert redact_uri("s3://lxn-data/images/x.jpg") == "s3://lxn-data/images/x.jpg"  # what is not secret stays
    assert redact_uri("http://u:pw@m:5000/#/experiments/1/runs/ab?token=x") == \
        "http://***@m:5000/#/experiments/1/runs/ab?token=***"


def test_redaction_keeps_structure_and_masks_secret_keys():
    value = {"aws_secret_access_key": "abc", "nested": [{"token": "t0ps3cret", "lr": 0.1}], "n": 3, "none": None,
             "sources": ("s3://u:pw123456@bkt/a", "/local/path")}
    assert redact(value) == {"aws_secret_access_key": MASK, "nested": [{"token": MASK, "lr": 0.1}], "n": 3,
                             "none": None, "sources": ("s3://***@bkt/a", "/local/path")}
    assert redact_text("failed: password=hunter2222; X-Amz-Signature=deadbeef99 ok") == \
        f"failed: password={MASK}; X-Amz-Signature={MASK} ok"


def test_secret_environment_values_and_registered_secrets_are_masked(monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG")
    assert redact_text("env dump: wJalrXUtnFEMI/K7MDENG") == f"env dump: {MASK}"
    register_secret("pa55-from-a-uri")
    assert redact({"message": "auth with pa55-from-a-uri failed"}) == {"message": f"auth with {MASK} failed"}


def test_log_records_are_redacted_args_and_tracebacks_included():
    logger = logging.getLogger("lxn.test.redact")
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(self.format(record))

    handler = Keep()
    handler.addFilter(RedactingFilter())
    logger.addHandler(handler)
    try:
        logger.warning("probe %s failed", "http://bob:s3cr3t-pass@mlflow:5000/api?token=abcdef123")
        try:
            raise OSError("GET s3://bkt/x?X-Amz-Signature=feedface42 -> 403")
        except OSError:
            logger.exception("fetch failed")
    finally:
        logger.removeHandler(handler)
    assert records[0].endswith("probe http://***@mlflow:5000/api?token=*** failed")
    assert "feedface42" not in records[1] and "s3://bkt/x?X-Amz-Signature=***" in records[1]


def test_job_errors_are_redacted(capsys):
    from lxn.cli import fail

    assert fail(ValueError("invalid S3 URI 's3://key:sekr3tvalue@bucket/x'")) == 2
    assert "sekr3tvalue" not in capsys.readouterr().err


# Where a URI may carry credentials, the prefix around them: masking must keep the prefix.
prefixes = st.lists(st.text(alphabet=string.ascii_lowercase + string.digits + "-_.", min_size=1, max_size=8),
                    min_size=0, max_size=3).map("/".join)
shapes = st.sampled_from([
    "{scheme}://{user}:{s}@{host}/{path}",
    "{scheme}://{user}:{s}/x@{host}/{path}",       # unencoded '/'
    "{scheme}://{user}:a@{s}@{host}/{path}",       # '@' in the password
    "{scheme}://{s}@{host}/{path}",                # a token as the user name
    "{scheme}://{host}/{path}?X-Amz-Signature={s}&X-Amz-Expires=60",
    "{scheme}://{host}/{path}?sig={s}",
    "{scheme}://{host}/{path}#{s}",
    "{scheme}://{host}/{path}#access_token={s}",
])


@settings(max_examples=150, deadline=None)
@given(shape=shapes, secret=secrets, scheme=st.sampled_from(["s3", "http", "https"]),
       user=st.sampled_from(["u", "lxn", "AKIAEXAMPLE"]), host=st.sampled_from(["lxn-data", "mlflow.internal:5000"]),
       path=prefixes)
def test_credentials_in_any_uri_shape_are_masked_in_place(shape, secret, scheme, user, host, path):
    assume(secret not in f"{scheme}://{user}/{host}/{path}")
    uri = shape.format(scheme=scheme, user=user, s=secret, host=host, path=path)
    for text in (redact_uri(uri), redact_text(f"error: {uri} failed"), json.dumps(redact({"source": uri}))):
        assert secret not in text
        assert MASK in text  # a sign that something was taken out
        assert f"{host}/{path}" in text  # the prefix that was named is still named
    assert redact_uri(f"{scheme}://{host}/{path}") == f"{scheme}://{host}/{path}"  # nothing to mask: unchanged


def test_an_at_sign_in_a_key_or_after_a_port_is_not_userinfo():
    for uri in ("s3://lxn-data/press/a@b.jpg", "http://mlflow:5000/a@b", "s3://lxn-data/x:y/a@b.jpg"):
        assert redact_uri(uri) == uri
