"""Drive the gateway with an official provider SDK and print what the SDK saw as JSON.

The Rust integration tests run this script and compare its output with what the mock
upstream sent. Usage:

    client.py PROVIDER MODE BASE_URL [PROMPT] [MODEL]

PROVIDER is `openai`, `anthropic` or `bedrock` (boto3 `bedrock-runtime` with
`endpoint_url` = BASE_URL, signing with the test tenant's AWS access key); MODE is
`json` or `stream` (for bedrock: `converse` / `converse_stream`).
"""

import json
import os
import sys


def run_openai(mode, base_url, prompt, model=None):
    import openai

    model = model or "gpt-4o-mini"

    # HAECHI_SDK_KEY: a gateway key, for tests that run the gateway with tenants.
    api_key = os.environ.get("HAECHI_SDK_KEY", "sk-test-client")
    client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0)
    messages = [{"role": "user", "content": prompt}]
    out = {"sdk": "openai", "version": openai.__version__}
    try:
        if mode == "json":
            raw = client.chat.completions.with_raw_response.create(
                model=model, messages=messages
            )
            out["request_id"] = raw.headers.get("x-haechi-request-id")
            out["action"] = raw.headers.get("x-haechi-action")
            out["response"] = raw.parse().to_dict()
        else:
            raw = client.chat.completions.with_raw_response.create(
                model=model, messages=messages, stream=True
            )
            out["request_id"] = raw.headers.get("x-haechi-request-id")
            out["action"] = raw.headers.get("x-haechi-action")
            chunks = [chunk.to_dict() for chunk in raw.parse()]
            out["chunks"] = chunks
            out["text"] = "".join(
                (c["choices"][0]["delta"].get("content") or "")
                for c in chunks
                if c.get("choices")
            )
    except openai.APIStatusError as e:
        out["error"] = {"status": e.status_code, "body": e.body, "type": type(e).__name__}
    except openai.APIError as e:
        # An error event inside a stream.
        out["error"] = {"status": None, "body": e.body, "type": type(e).__name__, "message": e.message}
    return out


# The test tenant's AWS credentials (tests/bedrock.rs lists the key id for a tenant).
TENANT_AWS_KEY_ID = "AKIATENANTTEST000001"
TENANT_AWS_SECRET = "tenant-secret-for-tests"


def run_bedrock(mode, base_url, prompt, model=None):
    import boto3
    import botocore
    from botocore.config import Config

    client = boto3.client(
        "bedrock-runtime",
        endpoint_url=base_url,
        region_name="us-west-2",
        aws_access_key_id=TENANT_AWS_KEY_ID,
        aws_secret_access_key=TENANT_AWS_SECRET,
        config=Config(retries={"max_attempts": 1}),
    )
    model = model or "anthropic.claude-3-haiku-20240307-v1:0"
    messages = [{"role": "user", "content": [{"text": prompt}]}]
    out = {"sdk": "boto3", "version": boto3.__version__}
    try:
        if mode in ("json", "converse"):
            r = client.converse(modelId=model, messages=messages)
            out["request_id"] = r["ResponseMetadata"]["HTTPHeaders"].get("x-haechi-request-id")
            out["action"] = r["ResponseMetadata"]["HTTPHeaders"].get("x-haechi-action")
            r.pop("ResponseMetadata", None)
            out["response"] = r
            out["text"] = "".join(b.get("text", "") for b in r["output"]["message"]["content"])
            out["stopReason"] = r["stopReason"]
        else:
            r = client.converse_stream(modelId=model, messages=messages)
            out["action"] = r["ResponseMetadata"]["HTTPHeaders"].get("x-haechi-action")
            events = list(r["stream"])
            out["events"] = events
            out["text"] = "".join(
                e["contentBlockDelta"]["delta"].get("text", "")
                for e in events
                if "contentBlockDelta" in e
            )
            out["stopReason"] = next(
                (e["messageStop"]["stopReason"] for e in events if "messageStop" in e), None
            )
    except botocore.exceptions.ClientError as e:
        out["error"] = {
            "code": e.response["Error"].get("Code"),
            "message": e.response["Error"].get("Message"),
            "status": e.response.get("ResponseMetadata", {}).get("HTTPStatusCode"),
        }
    except botocore.exceptions.EventStreamError as e:
        out["error"] = {"code": "EventStreamError", "message": str(e)}
    return out


def run_anthropic(mode, base_url, prompt):
    import anthropic

    client = anthropic.Anthropic(base_url=base_url, api_key="sk-ant-test-client", max_retries=0)
    messages = [{"role": "user", "content": prompt}]
    out = {"sdk": "anthropic", "version": anthropic.__version__}
    try:
        if mode == "json":
            raw = client.messages.with_raw_response.create(
                model="claude-sonnet-4-5", max_tokens=64, messages=messages
            )
            out["request_id"] = raw.headers.get("x-haechi-request-id")
            out["action"] = raw.headers.get("x-haechi-action")
            out["response"] = raw.parse().to_dict()
        else:
            raw = client.messages.with_raw_response.create(
                model="claude-sonnet-4-5", max_tokens=64, messages=messages, stream=True
            )
            out["request_id"] = raw.headers.get("x-haechi-request-id")
            out["action"] = raw.headers.get("x-haechi-action")
            events = [event.to_dict() for event in raw.parse()]
            out["events"] = events
            out["text"] = "".join(
                e["delta"].get("text", "")
                for e in events
                if e.get("type") == "content_block_delta"
            )
    except anthropic.APIStatusError as e:
        out["error"] = {"status": e.status_code, "body": e.body, "type": type(e).__name__}
    return out


def main():
    provider, mode, base_url = sys.argv[1], sys.argv[2], sys.argv[3]
    prompt = sys.argv[4] if len(sys.argv) > 4 else "Say hello."
    model = sys.argv[5] if len(sys.argv) > 5 else None
    if provider == "openai":
        out = run_openai(mode, base_url, prompt, model)
    elif provider == "bedrock":
        out = run_bedrock(mode, base_url, prompt, model)
    else:
        out = run_anthropic(mode, base_url, prompt)
    print(json.dumps(out, ensure_ascii=False, default=str))


if __name__ == "__main__":
    main()
