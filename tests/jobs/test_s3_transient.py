"""Transient S3 failures: the chat pipeline still yields every row exactly once.

moto's S3 server sits behind a loopback proxy that answers each distinct request first with a
503 SlowDown, then with a connection reset, and only then forwards it. The dataset reads
s3:// through the proxy; every conversation carries a unique marker that must come out of
the tokenized rows exactly once.
"""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter

import pytest

from tests.jobs._flaky_proxy import FlakyS3Proxy
from tests.s3 import moto_s3_server, upload_files

BUCKET = "raytune-chat-flaky"
FILES = {"part-a.jsonl": 25, "part-b.json": 20, "part-c.jsonl.gz": 15}

pytestmark = pytest.mark.slow


def _conversation(i: int) -> dict:
    return {
        "dialogue": [
            {"from": "human", "value": f"Please repeat the code word zq{i:04d}x."},
            {"from": "gpt", "value": f"The code word is zq{i:04d}x."},
        ]
    }


def _write_parts(folder) -> list:
    paths, start = [], 0
    for name, count in FILES.items():
        rows = [_conversation(i) for i in range(start, start + count)]
        start += count
        path = folder / name
        if name.endswith(".json"):
            path.write_text(json.dumps(rows))
        else:
            text = "".join(json.dumps(r) + "\n" for r in rows).encode()
            path.write_bytes(gzip.compress(text) if name.endswith(".gz") else text)
        paths.append(path)
    return paths


def test_pipeline_reads_every_row_once_despite_transient_s3_errors(ray_cluster, bpe_path, tmp_path):
    from raytune_chat.datasets import chat_dataset
    from raytune_chat.models.llama3 import llama3_tokenizer

    tokenizer = llama3_tokenizer(str(bpe_path), max_seq_len=128)
    total = sum(FILES.values())
    with moto_s3_server() as s3:
        upload_files(s3, BUCKET, "chats", _write_parts(tmp_path))
        with FlakyS3Proxy(s3.endpoint_url, failures_per_request=2) as proxy:
            options = {
                **s3.storage_options,
                "endpoint_url": proxy.url,
                "client_kwargs": {"region_name": s3.region},
            }
            ds = chat_dataset(
                tokenizer,
                source="json",
                data_files=f"s3://{BUCKET}/chats/",
                conversation_column="dialogue",
                conversation_style="sharegpt",
                storage_options=options,
                rejected_path=str(tmp_path / "rejected"),
            )
            rows = ds.take_all()
    # Injected faults actually happened, of both kinds, and every request got through.
    assert proxy.injected["503"] >= 3 and proxy.injected["reset"] >= 3, proxy.injected
    assert proxy.forwarded >= len(FILES)
    seen = Counter()
    for row in rows:
        text = tokenizer.decode(list(row["tokens"]))
        seen.update(re.findall(r"zq\d{4}x", text))
    # Each conversation's marker appears twice (the user's request, the answer) in one row.
    assert len(rows) == total
    assert seen == Counter({f"zq{i:04d}x": 2 for i in range(total)})


def test_proxy_breaks_clients_that_do_not_retry(tmp_path):
    """Control: the injected faults are real failures, not something S3 clients shrug off."""
    import botocore.exceptions
    import s3fs

    with moto_s3_server() as s3:
        (uri,) = upload_files(s3, BUCKET, "one", _write_parts(tmp_path)[:1])
        with FlakyS3Proxy(s3.endpoint_url, failures_per_request=1) as proxy:
            fs = s3fs.S3FileSystem(
                key=s3.key,
                secret=s3.secret,
                endpoint_url=proxy.url,
                config_kwargs={"retries": {"total_max_attempts": 1, "mode": "standard"}},
                skip_instance_cache=True,
            )
            fs.retries = 1  # s3fs's own retry loop on top of botocore's
            failures, data = 0, None
            for _ in range(3):  # HEAD fails once, then GET fails once, then it passes
                try:
                    data = fs.cat(uri)
                    break
                except (OSError, botocore.exceptions.BotoCoreError):
                    failures += 1
    assert failures == 2 and proxy.injected == {"503": 2}
    assert data.startswith(b'{"dialogue"')
