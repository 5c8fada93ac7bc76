//! Aggregation through the real gateway: names, routing, pagination, resources, prompts,
//! completions and errors, in both protocol eras, with stdio and Streamable HTTP upstreams.

mod support;

use rmcp::model::{
    ArgumentInfo, CompleteRequestParams, GetPromptRequestParams, PaginatedRequestParams,
    ReadResourceRequestParams, Reference, ResourceContents,
};
use serde_json::json;
use support::*;

async fn two_upstream_gateway(
    server_extra: &str,
) -> (TestGateway, tokio_util::sync::CancellationToken) {
    let (url, ct) = http_demo_upstream().await;
    let upstreams = format!(
        "{}{}",
        stdio_demo("local", None, ""),
        http_upstream("remote", "streamable-http", &url, "")
    );
    (TestGateway::start(server_extra, &upstreams).await, ct)
}

#[tokio::test]
async fn tools_of_all_upstreams_are_listed_with_prefixes_in_both_eras() {
    let (gw, _upstream) = two_upstream_gateway("").await;
    for era in [Era::Legacy, Era::Modern] {
        let (client, _) = connect(&gw.mcp_url(), era).await;
        let names = tool_names(&client).await;
        let expected: Vec<String> = ["local", "remote"]
            .iter()
            .flat_map(|p| DEMO_TOOLS.iter().map(move |t| format!("{p}__{t}")))
            .collect();
        assert_eq!(names, expected, "{era:?}");
        let local = client
            .call_tool(call("local__echo", json!({"text": "via stdio"})))
            .await
            .unwrap();
        assert_eq!(text(&local), "via stdio");
        let remote = client
            .call_tool(call("remote__add", json!({"a": 40, "b": 2})))
            .await
            .unwrap();
        assert_eq!(text(&remote), "42");
        client.cancel().await.unwrap();
    }
}

#[tokio::test]
async fn pagination_walks_every_tool_once_with_opaque_cursors() {
    let (gw, _upstream) = two_upstream_gateway("page_size = 7").await;
    let (client, _) = connect(&gw.mcp_url(), Era::Legacy).await;
    let first = client.list_tools(None).await.unwrap();
    assert_eq!(first.tools.len(), 7);
    let cursor = first.next_cursor.clone().expect("a second page");
    assert!(!cursor.contains("local"), "cursor must be opaque: {cursor}");
    let second = client
        .list_tools(Some(
            PaginatedRequestParams::default().with_cursor(Some(cursor)),
        ))
        .await
        .unwrap();
    assert_eq!(second.tools.len(), 2 * DEMO_TOOLS.len() - 7);
    assert!(second.next_cursor.is_none());
    let all: Vec<_> = first
        .tools
        .iter()
        .chain(&second.tools)
        .map(|t| t.name.to_string())
        .collect();
    let mut dedup = all.clone();
    dedup.dedup();
    assert_eq!(all.len(), 2 * DEMO_TOOLS.len());
    assert_eq!(dedup.len(), 2 * DEMO_TOOLS.len());

    let bad = client
        .list_tools(Some(
            PaginatedRequestParams::default().with_cursor(Some("not-a-cursor!".into())),
        ))
        .await
        .unwrap_err();
    let err = mcp_error(bad);
    assert_eq!(err.code.0, -32602);
    assert!(err.message.contains("cursor"), "{}", err.message);
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn unknown_tools_get_invalid_params_naming_the_tool() {
    let (gw, _upstream) = two_upstream_gateway("").await;
    for era in [Era::Legacy, Era::Modern] {
        let (client, _) = connect(&gw.mcp_url(), era).await;
        let err = mcp_error(
            client
                .call_tool(call("nope__echo", json!({})))
                .await
                .unwrap_err(),
        );
        assert_eq!(err.code.0, -32602, "{era:?}");
        assert!(err.message.contains("nope__echo"), "{}", err.message);
        // The upstream's own errors pass through unchanged.
        let err = mcp_error(
            client
                .call_tool(call("local__add", json!({"a": 1})))
                .await
                .unwrap_err(),
        );
        assert!(
            err.message.contains("missing argument \"b\""),
            "{}",
            err.message
        );
        client.cancel().await.unwrap();
    }
}

#[tokio::test]
async fn resources_prompts_and_completions_route_back() {
    let (gw, _upstream) = two_upstream_gateway("").await;
    for era in [Era::Legacy, Era::Modern] {
        let (client, _) = connect(&gw.mcp_url(), era).await;
        let resources = client.list_all_resources().await.unwrap();
        let uris: Vec<_> = resources.iter().map(|r| r.uri.clone()).collect();
        assert!(uris.contains(&"local+demo://readme".to_owned()), "{uris:?}");
        assert!(
            uris.contains(&"remote+demo://readme".to_owned()),
            "{uris:?}"
        );

        let read = client
            .read_resource(ReadResourceRequestParams::new("remote+demo://readme"))
            .await
            .unwrap();
        match &read.contents[0] {
            ResourceContents::TextResourceContents { uri, text, .. } => {
                assert_eq!(uri, "remote+demo://readme");
                assert!(text.contains("demo upstream"));
            }
            other => panic!("unexpected contents {other:?}"),
        }

        let templates = client.list_all_resource_templates().await.unwrap();
        assert!(
            templates
                .iter()
                .any(|t| t.uri_template == "local+demo://notes/{id}")
        );
        let note = client
            .read_resource(ReadResourceRequestParams::new("local+demo://notes/7"))
            .await
            .unwrap();
        match &note.contents[0] {
            ResourceContents::TextResourceContents { text, .. } => assert_eq!(text, "Note 7"),
            other => panic!("unexpected contents {other:?}"),
        }
        let missing = client
            .read_resource(ReadResourceRequestParams::new("elsewhere://x"))
            .await
            .unwrap_err();
        assert!(mcp_error(missing).message.contains("elsewhere://x"));

        let prompts = client.list_all_prompts().await.unwrap();
        assert!(prompts.iter().any(|p| p.name == "remote__greeting"));
        let mut get = GetPromptRequestParams::new("remote__greeting");
        get.arguments = json!({"name": "Ada"}).as_object().cloned();
        let prompt = client.get_prompt(get).await.unwrap();
        let rendered = serde_json::to_string(&prompt.messages).unwrap();
        assert!(rendered.contains("Say hello to Ada"), "{rendered}");

        let complete = client
            .complete(CompleteRequestParams::new(
                Reference::for_prompt("local__greeting"),
                ArgumentInfo::new("name", "Gr"),
            ))
            .await
            .unwrap();
        assert_eq!(complete.completion.values, vec!["Grace".to_owned()]);
        client.cancel().await.unwrap();
    }
}

#[tokio::test]
async fn an_unreachable_upstream_does_not_hide_the_others() {
    // Port 9 (discard) on loopback: nothing listens there.
    let upstreams = format!(
        "{}{}",
        stdio_demo("up", None, ""),
        http_upstream(
            "down",
            "streamable-http",
            "http://127.0.0.1:9/mcp",
            "connect_timeout_ms = 1000"
        )
    );
    let gw = TestGateway::start("", &upstreams).await;
    let (client, _) = connect(&gw.mcp_url(), Era::Legacy).await;
    let tools = client.list_all_tools().await.unwrap();
    assert_eq!(tools.len(), DEMO_TOOLS.len());
    assert!(tools.iter().all(|t| t.name.starts_with("up__")));
    let ready: serde_json::Value = reqwest::get(format!("{}/readyz", gw.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let down = ready["upstreams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "down")
        .unwrap();
    assert_eq!(down["health"]["state"], "down", "{ready}");
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn a_call_to_a_vanished_upstream_names_it() {
    let (url, upstream) = http_demo_upstream().await;
    let gw = TestGateway::start(
        "",
        &format!(
            "{}{}",
            stdio_demo("local", None, ""),
            http_upstream("remote", "streamable-http", &url, "")
        ),
    )
    .await;
    let (client, _) = connect(&gw.mcp_url(), Era::Legacy).await;
    assert_eq!(
        text(
            &client
                .call_tool(call("remote__add", json!({"a": 1, "b": 1})))
                .await
                .unwrap()
        ),
        "2"
    );
    upstream.cancel();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let err = mcp_error(
        client
            .call_tool(call("remote__add", json!({"a": 1, "b": 1})))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code.0, -32010, "{err:?}");
    assert!(err.message.contains("\"remote\""), "{}", err.message);
    // The other upstream is unaffected.
    assert_eq!(
        text(
            &client
                .call_tool(call("local__echo", json!({"text": "ok"})))
                .await
                .unwrap()
        ),
        "ok"
    );
    client.cancel().await.unwrap();
}
