"""Drive the gateway with an official provider SDK and print what the SDK saw as JSON.

The Rust integration tests run this script and compare its output with what the mock
upstream sent. Usage:

    client.py PROVIDER MODE BASE_URL [PROMPT]

PROVIDER is `openai` or `anthropic`; MODE is `json` or `stream`.
"""

import json
import sys


def run_openai(mode, base_url, prompt):
    import openai

    client = openai.OpenAI(base_url=base_url, api_key="sk-test-client", max_retries=0)
    messages = [{"role": "user", "content": prompt}]
    out = {"sdk": "openai", "version": openai.__version__}
    try:
        if mode == "json":
            raw = client.chat.completions.with_raw_response.create(
                model="gpt-4o-mini", messages=messages
            )
            out["request_id"] = raw.headers.get("x-haechi-request-id")
            out["action"] = raw.headers.get("x-haechi-action")
            out["response"] = raw.parse().to_dict()
        else:
            raw = client.chat.completions.with_raw_response.create(
                model="gpt-4o-mini", messages=messages, stream=True
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
    runner = run_openai if provider == "openai" else run_anthropic
    print(json.dumps(runner(mode, base_url, prompt), ensure_ascii=False))


if __name__ == "__main__":
    main()
