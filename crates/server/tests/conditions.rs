//! Custom-role conditions through the real server: a CEL expression set through the admin
//! API decides each call on its arguments and caller (a call it refuses answers exactly like
//! an unknown tool), a syntax error is refused with CEL's message, and glob conditions keep
//! working beside it.

mod support;

use reqwest::Method as M;
use serde_json::json;
use support::admin::{Api, PLATFORM};
use support::tenancy::{Backend, TestDb};
use support::{Era, TestGateway, call, connect_as, mcp_error, stdio_demo, text, tool_names};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cel_conditions_decide_calls_on_arguments_and_caller() {
    let db = TestDb::create(Backend::Sqlite).await.unwrap();
    let config = format!(
        "{}[admin]\ntoken = {PLATFORM:?}\n{}",
        db.toml(),
        stdio_demo("demo", None, "")
    );
    let mut gw = TestGateway::start("", &config).await;
    let api = Api::new(&gw.base);
    let made = api
        .send(
            Some(PLATFORM),
            M::POST,
            "/tenants",
            Some(json!({"id": "acme", "name": "Acme", "owner": "root@acme.com"})),
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.body);

    // A syntax error is refused with the field and CEL's own message.
    let bad = api
        .send(
            Some(PLATFORM),
            M::PUT,
            "/tenants/acme/roles/echoer",
            Some(json!({"permissions": [{"target": "demo/echo", "conditions": [{"cel": "args.text.startsWith("}]}]})),
        )
        .await;
    assert_eq!(bad.status, 422, "{}", bad.body);
    assert_eq!(bad.body["error"]["field"], "permissions");
    let message = bad.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("cel:") && message.contains("Syntax error"),
        "{message}"
    );

    let role = api
        .send(
            Some(PLATFORM),
            M::PUT,
            "/tenants/acme/roles/echoer",
            Some(json!({"permissions": [
                {"kinds": ["tool"], "target": "demo/echo", "conditions": [
                    {"cel": "args.text.startsWith(tenant + ':') && size(args.text) <= 20 && 'eng' in groups"}
                ]},
                {"kinds": ["tool"], "target": "demo/add", "conditions": [{"argument": "note", "matches": "ok-*"}]}
            ]})),
        )
        .await;
    assert_eq!(role.status, 200, "{}", role.body);
    assert_eq!(
        role.body["permissions"][0]["conditions"][0]["cel"],
        "args.text.startsWith(tenant + ':') && size(args.text) <= 20 && 'eng' in groups",
        "stored and shown as written"
    );
    for (user, groups) in [("ada@acme.com", vec!["eng"]), ("bob@acme.com", vec![])] {
        let member = api
            .send(
                Some(PLATFORM),
                M::POST,
                "/tenants/acme/members",
                Some(json!({"user": user, "role": "echoer"})),
            )
            .await;
        assert_eq!(member.status, 201, "{}", member.body);
        if !groups.is_empty() {
            let group = api
                .send(
                    Some(PLATFORM),
                    M::POST,
                    "/tenants/acme/groups",
                    Some(json!({"name": "eng", "members": [user]})),
                )
                .await;
            assert_eq!(group.status, 201, "{}", group.body);
        }
    }
    let ada = api.user_key("acme", "ada@acme.com").await;
    let bob = api.user_key("acme", "bob@acme.com").await;
    let url = format!("{}/t/acme/mcp", gw.base);

    let (client, _) = connect_as(&url, Era::Modern, &ada).await;
    // Listed (conditions are decided per call), and allowed when the expression holds.
    let names = tool_names(&client).await;
    assert!(names.contains(&"demo__echo".to_owned()) && names.contains(&"demo__add".to_owned()));
    let ok = client
        .call_tool(call("demo__echo", json!({"text": "acme:hello"})))
        .await
        .unwrap();
    assert_eq!(text(&ok), "acme:hello");
    // Each way the expression fails answers like an unknown tool.
    for args in [
        json!({"text": "globex:hello"}),
        json!({"text": "acme:this text is far too long"}),
        json!({"text": 7}),
        json!({}),
    ] {
        let err = mcp_error(
            client
                .call_tool(call("demo__echo", args.clone()))
                .await
                .unwrap_err(),
        );
        assert_eq!(err.code.0, -32602, "{args}");
        assert!(
            err.message.contains("unknown tool"),
            "{args}: {}",
            err.message
        );
    }
    // The glob form beside it.
    assert!(
        client
            .call_tool(call("demo__add", json!({"a": 1, "b": 2, "note": "ok-1"})))
            .await
            .is_ok()
    );
    assert!(
        client
            .call_tool(call("demo__add", json!({"a": 1, "b": 2, "note": "nope"})))
            .await
            .is_err()
    );
    let _ = client.cancel().await;

    // Bob holds the same role but is not in `eng`: the expression sees the caller.
    let (client, _) = connect_as(&url, Era::Legacy, &bob).await;
    assert!(
        client
            .call_tool(call("demo__echo", json!({"text": "acme:hello"})))
            .await
            .is_err()
    );
    let _ = client.cancel().await;

    // The decision and its reason reach the audit trail (written in batches).
    let mut found = String::new();
    for _ in 0..50 {
        let audit = api
            .send(
                Some(PLATFORM),
                M::GET,
                "/tenants/acme/audit?kind=decision&outcome=denied&limit=200",
                None,
            )
            .await;
        assert_eq!(audit.status, 200, "{}", audit.body);
        found = audit.body.to_string();
        if found.contains("condition") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        found.contains("condition"),
        "a refused call's reason names the unmet condition: {found}"
    );
    gw.stop().await;
    db.cleanup().await;
}
