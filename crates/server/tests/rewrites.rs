//! Argument rewriting and result filtering through the real server: one shared upstream
//! serves two tenants, each call's argument gets the caller's tenant prefix, and list
//! results keep only the caller's items with the prefix stripped.

mod support;

use serde_json::json;
use support::admin::{Api, PLATFORM};
use support::tenancy::{Backend, TestDb};
use support::{Era, TestGateway, call, connect_as, mcp_error, stdio_demo, text};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_shared_upstream_serves_tenants_without_them_seeing_each_other() {
    let db = TestDb::create(Backend::Sqlite).await.unwrap();
    let graphs = stdio_demo(
        "graphs",
        None,
        "[[upstreams.graphs.arguments]]\ntools = \"echo\"\nargument = \"text\"\nprefix = \"{{tenant}}_\"\n\
         [[upstreams.graphs.arguments]]\ntools = \"add\"\nargument = \"a\"\nprefix = \"{{tenant}}_\"\n",
    );
    let lists = stdio_demo(
        "lists",
        None,
        "[[upstreams.lists.results]]\ntools = \"ech?\"\nkeep_prefix = \"{{tenant}}_\"\n",
    );
    let config = format!(
        "{}[admin]\ntoken = {PLATFORM:?}\n{graphs}{lists}",
        db.toml()
    );
    let mut gw = TestGateway::start("", &config).await;
    let api = Api::new(&gw.base);
    api.create_tenants(&[("acme", "root@acme.com"), ("globex", "boss@globex.com")])
        .await;
    let keys = [
        ("acme", api.user_key("acme", "root@acme.com").await),
        ("globex", api.user_key("globex", "boss@globex.com").await),
    ];
    let listing = "Graphs:\nacme_users\nglobex_orders\n  acme_products";
    for (tenant, key) in &keys {
        let url = format!("{}/t/{tenant}/mcp", gw.base);
        for era in [Era::Legacy, Era::Modern] {
            let (client, _) = connect_as(&url, era, key).await;
            // The upstream received the argument with the caller's prefix (echo shows it).
            let echoed = client
                .call_tool(call("graphs__echo", json!({"text": "users"})))
                .await
                .unwrap();
            assert_eq!(text(&echoed), format!("{tenant}_users"), "{era:?}");
            // A list comes back with only the caller's items, prefix stripped.
            let listed = client
                .call_tool(call("lists__echo", json!({"text": listing})))
                .await
                .unwrap();
            let expected = match *tenant {
                "acme" => "users\nproducts",
                _ => "orders",
            };
            assert_eq!(text(&listed), expected, "{tenant} {era:?}");
            // JSON lists are filtered item by item.
            let as_json = json!(["acme_a", "globex_b", {"name": "acme_c"}]).to_string();
            let listed = client
                .call_tool(call("lists__echo", json!({"text": as_json})))
                .await
                .unwrap();
            let expected = match *tenant {
                "acme" => json!(["a", {"name": "c"}]),
                _ => json!(["b"]),
            };
            assert_eq!(
                serde_json::from_str::<serde_json::Value>(&text(&listed)).unwrap(),
                expected
            );
            // An argument the rule cannot prefix is refused, naming it.
            let err = client
                .call_tool(call("graphs__add", json!({"a": 1, "b": 2})))
                .await
                .map(|_| ())
                .map_err(mcp_error)
                .unwrap_err();
            assert_eq!(err.code.0, -32602);
            assert!(err.message.contains("\"a\""), "{}", err.message);
            let _ = client.cancel().await;
        }
    }
    gw.stop().await;
    db.cleanup().await;
}
