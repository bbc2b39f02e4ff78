"""The slim botocore data the S3 client loads (webframe.storage.s3_models)."""

from __future__ import annotations

import gc
import json
import os
import tracemalloc
from typing import Any

import pytest

pytest.importorskip("botocore")

import botocore.config
import botocore.loaders
import botocore.session

from webframe.storage.s3_models import (
    SlimJSONFileLoader,
    release_freed_memory,
    slim_endpoints,
    slim_loader,
)

DOC = {
    "partitions": [
        {
            "partition": "aws",
            "dnsSuffix": "amazonaws.com",
            "regions": {"us-east-1": {"description": "N. Virginia"}},
            "services": {
                "ec2": {"endpoints": {"us-east-1": {}}},
                "s3": {"endpoints": {"us-east-1": {"hostname": "s3.amazonaws.com"}}},
                "sqs": {"endpoints": {}},
                "sts": {"endpoints": {"aws-global": {}}},
            },
        },
        {"partition": "empty", "services": {}, "regions": {}},
    ],
    "version": 3,
}


def test_only_the_kept_services_remain_everything_else_is_intact() -> None:
    got = slim_endpoints(json.dumps(DOC, indent=2))
    want = json.loads(json.dumps(DOC))
    for partition in want["partitions"]:
        partition["services"] = {
            k: v for k, v in partition["services"].items() if k in ("s3", "sts")
        }
    assert got == want
    # Compact and odd whitespace parse the same.
    assert slim_endpoints(json.dumps(DOC, separators=(",", ":"))) == want
    assert slim_endpoints(" \n" + json.dumps(DOC, indent="\t") + "\n") == want


@pytest.mark.parametrize(
    "text",
    ['{"partitions": [', '{"partitions": []', '{"a" 1}', '{"a": 1,}', '{"a": 1} x', "[]"],
)
def test_malformed_endpoint_data_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        slim_endpoints(text)


def _default_loader() -> Any:
    return botocore.loaders.create_loader()


def test_botocore_endpoint_table_keeps_partitions_and_s3() -> None:
    full = _default_loader().load_data("endpoints")
    slim = slim_loader(None).load_data("endpoints")
    assert [p["partition"] for p in slim["partitions"]] == [
        p["partition"] for p in full["partitions"]
    ]
    for fp, sp in zip(full["partitions"], slim["partitions"], strict=True):
        assert {k: v for k, v in fp.items() if k != "services"} == {
            k: v for k, v in sp.items() if k != "services"
        }
        assert set(sp["services"]) == {"s3", "sts"} & set(fp["services"])
        assert sp["services"].get("s3") == fp["services"].get("s3")


def test_s3_model_has_every_operation_without_documentation() -> None:
    full = _default_loader().load_service_model("s3", "service-2")
    slim = slim_loader(None).load_service_model("s3", "service-2")
    assert list(slim["operations"]) == list(full["operations"])
    assert list(slim["shapes"]) == list(full["shapes"])
    op = slim["operations"]["UploadPart"]
    assert op["documentation"] == "" and full["operations"]["UploadPart"]["documentation"]
    assert {k: v for k, v in op.items() if k != "documentation"} == {
        k: v for k, v in full["operations"]["UploadPart"].items() if k != "documentation"
    }


def _client(loader: Any, **kwargs: Any) -> Any:
    session = botocore.session.get_session()
    if loader is not None:
        session.register_component("data_loader", loader)
    return session.create_client(
        "s3",
        aws_access_key_id="k",
        aws_secret_access_key="s",
        region_name="eu-west-1",
        config=botocore.config.Config(signature_version="s3v4"),
        **kwargs,
    )


@pytest.mark.parametrize("endpoint", [None, "http://127.0.0.1:9000"])
def test_a_client_on_slim_data_signs_the_same_request(endpoint: str | None) -> None:
    urls = []
    for loader in (None, slim_loader(None)):
        client = _client(loader, endpoint_url=endpoint)
        urls.append(
            client.generate_presigned_url(
                "upload_part",
                Params={"Bucket": "bucket-a", "Key": "a/b", "UploadId": "u", "PartNumber": 1},
                ExpiresIn=60,
            ).split("X-Amz-Date=")[0]
        )
        client.close()
    assert urls[0] == urls[1]
    assert "%2Feu-west-1%2Fs3%2Faws4_request" in urls[1]
    if endpoint is None:
        assert urls[1].startswith("https://bucket-a.s3.amazonaws.com/a/b?")


def test_slim_data_keeps_less_memory() -> None:
    def kept(loader: Any) -> int:
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        data = (loader.load_data("endpoints"), loader.load_service_model("s3", "service-2"))
        size = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        del data
        return size

    full, slim = kept(_default_loader()), kept(slim_loader(None))
    assert slim < full / 3, (full, slim)


def test_missing_file_is_none_and_trim_is_harmless(tmp_path: Any) -> None:
    assert SlimJSONFileLoader().load_file(os.fspath(tmp_path / "nothing")) is None
    (tmp_path / "other.json").write_text('{"documentation": "kept", "a": [1]}')
    assert SlimJSONFileLoader().load_file(os.fspath(tmp_path / "other")) == {
        "documentation": "kept",
        "a": [1],
    }
    release_freed_memory()
