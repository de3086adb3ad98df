"""The S3 fixture is a real HTTP endpoint on loopback."""

import boto3
import urllib.request


def test_endpoint_is_http_on_loopback(s3_endpoint, s3_bucket):
    assert s3_endpoint.startswith("http://127.0.0.1:")
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    client.put_object(Bucket=s3_bucket, Key="a/b.txt", Body=b"hello")
    assert client.get_object(Bucket=s3_bucket, Key="a/b.txt")["Body"].read() == b"hello"
    url = client.generate_presigned_url("get_object", Params={"Bucket": s3_bucket, "Key": "a/b.txt"})
    assert url.startswith(s3_endpoint)
    with urllib.request.urlopen(url) as response:  # a plain HTTP GET, no boto3
        assert response.read() == b"hello"
