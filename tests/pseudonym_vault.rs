//! Pseudonyms that outlive a request: within a conversation (`x-haechi-conversation`)
//! placeholders stay the same across turns and come back in later answers, with the
//! in-memory vault and with an encrypted Redis vault shared by two replicas.

mod support;

use std::sync::Arc;

use haechi::config::{GatewayConfig, StoreConfig};
use support::mock_upstream::{self, json_reply};
use support::*;

const POLICY: &str = r#"
id: default
input:
  - id: email-in
    detector: pii
    entities: [EMAIL]
    action: pseudonymize
"#;
const EMAIL: &str = "minji.kim@example.co.kr";

/// A mock model that remembers nothing but always answers about `<EMAIL_1>`, as a model
/// would in a later turn of a conversation it saw pseudonymized.
async fn mock() -> MockUpstream {
    MockUpstream::start_with(Arc::new(|_| {
        json_reply(mock_upstream::openai_json(
            "m",
            "I will write to <EMAIL_1> today.",
        ))
    }))
    .await
}

fn config(mock: &MockUpstream, dir: &std::path::Path, store: Option<StoreConfig>) -> GatewayConfig {
    std::fs::write(dir.join("default.yaml"), POLICY).expect("policy");
    let mut c = config_for(mock);
    c.policies = Some(dir.to_path_buf());
    c.store = store;
    c
}

async fn turn(gw: &TestGateway, conversation: Option<&str>, text: &str) -> Whole {
    let body =
        serde_json::json!({"model":"m","messages":[{"role":"user","content":text}]}).to_string();
    let mut headers = vec![("content-type", "application/json")];
    if let Some(c) = conversation {
        headers.push(("x-haechi-conversation", c));
    }
    call("POST", &gw.url("/v1/chat/completions"), &headers, body).await
}

fn answer(r: &Whole) -> String {
    r.json()["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_vault_restores_placeholders_of_earlier_turns() {
    let mock = mock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let gw = TestGateway::start(config(&mock, dir.path(), None)).await;

    let r = turn(&gw, Some("conv-1"), &format!("My e-mail is {EMAIL}.")).await;
    assert_eq!(answer(&r), format!("I will write to {EMAIL} today."));
    assert!(String::from_utf8_lossy(&mock.recorded()[0].body).contains("<EMAIL_1>"));

    // A later turn that does not repeat the address: the answer still gets it back.
    let r = turn(&gw, Some("conv-1"), "Please confirm.").await;
    assert_eq!(answer(&r), format!("I will write to {EMAIL} today."));
    // The same value keeps its placeholder in the conversation; a new one gets the next.
    let r = turn(
        &gw,
        Some("conv-1"),
        &format!("Also cc lee@example.com and {EMAIL}."),
    )
    .await;
    assert_eq!(r.status, 200);
    let forwarded = String::from_utf8_lossy(&mock.recorded()[2].body).to_string();
    assert!(
        forwarded.contains("cc <EMAIL_2> and <EMAIL_1>"),
        "{forwarded}"
    );
    // Another conversation (or none) does not see conv-1's values.
    let r = turn(&gw, Some("conv-2"), "Please confirm.").await;
    assert_eq!(answer(&r), "I will write to <EMAIL_1> today.");
    let r = turn(&gw, None, "Please confirm.").await;
    assert_eq!(answer(&r), "I will write to <EMAIL_1> today.");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_an_encrypted_redis_vault() {
    let bin = require_redis!();
    let redis = support::redis::RedisProc::start(bin);
    std::env::set_var(
        "HAECHI_TEST_VAULT_KEY",
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
    );
    let store = || StoreConfig {
        redis_url: Some(redis.url()),
        fail_mode: Default::default(),
        timeout_ms: 250,
        replicas: 2,
        vault_key_env: Some("HAECHI_TEST_VAULT_KEY".into()),
        vault_ttl_secs: 60,
    };
    let mock = mock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let gw1 = TestGateway::start(config(&mock, dir.path(), Some(store()))).await;
    let gw2 = TestGateway::start(config(&mock, dir.path(), Some(store()))).await;

    let r = turn(&gw1, Some("conv-r"), &format!("My e-mail is {EMAIL}.")).await;
    assert_eq!(answer(&r), format!("I will write to {EMAIL} today."));
    // The next turn lands on the other replica.
    let r = turn(&gw2, Some("conv-r"), "Please confirm.").await;
    assert_eq!(
        answer(&r),
        format!("I will write to {EMAIL} today."),
        "restored from the shared vault"
    );

    // At rest in Redis the value is encrypted.
    let client = ::redis::Client::open(redis.url()).expect("client");
    let mut conn = client.get_connection().expect("connection");
    let keys: Vec<String> = ::redis::cmd("KEYS")
        .arg("*")
        .query(&mut conn)
        .expect("keys");
    assert!(!keys.is_empty());
    for key in keys {
        let kind: String = ::redis::cmd("TYPE")
            .arg(&key)
            .query(&mut conn)
            .expect("type");
        if kind == "string" {
            let value: Vec<u8> = ::redis::cmd("GET").arg(&key).query(&mut conn).expect("get");
            assert!(
                !String::from_utf8_lossy(&value).contains("minji"),
                "plaintext in Redis at {key}"
            );
        }
    }
    gw1.stop().await;
    gw2.stop().await;
}
