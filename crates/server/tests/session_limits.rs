//! Legacy Streamable HTTP session limits: per user (`maxSessionsPerUser`) and per tenant
//! (`maxSessions`), a session ended with `DELETE` or by going idle frees its place.

mod support;

use support::tenancy::{gateway_with_session_caps, initialize, legacy_session};
use support::{Era, try_connect};

/// Sessions the gateway ends on its own (idle) stop counting against the limits.
#[tokio::test]
async fn idle_sessions_that_ended_free_their_place() {
    let (gw, org, db) = gateway_with_session_caps(1, Some(1), "session_idle_ms = 300\n").await;
    let url = format!("{}/t/acme/mcp", gw.base);
    let _idle = legacy_session(&url, &org.ada).await;
    let refused = initialize(&url, &org.root).await;
    assert_eq!(refused.status().as_u16(), 429, "the tenant's one session");
    // The idle session ends after 300 ms (the sweeper looks every 75 ms).
    let mut status = 0;
    for _ in 0..40 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        status = initialize(&url, &org.root).await.status().as_u16();
        if status == 200 {
            break;
        }
    }
    assert_eq!(status, 200, "the ended session no longer counts");
    db.cleanup().await;
}

/// Places are taken when the limit is checked, so many `initialize`s at once cannot pass a
/// limit together.
#[tokio::test]
async fn concurrent_opens_never_pass_the_tenant_limit() {
    let (gw, org, db) = gateway_with_session_caps(100, Some(3), "").await;
    let url = format!("{}/t/acme/mcp", gw.base);
    let opens = (0..12).map(|_| initialize(&url, &org.ada));
    let statuses: Vec<u16> = futures::future::join_all(opens)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    let opened = statuses.iter().filter(|s| **s == 200).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((opened, refused), (3, 9), "{statuses:?}");
    db.cleanup().await;
}

#[tokio::test]
async fn sessions_are_bounded_per_user() {
    let (gw, org, db) = gateway_with_session_caps(2, None, "").await;
    let url = format!("{}/t/acme/mcp", gw.base);
    let one = legacy_session(&url, &org.ada).await;
    let _two = legacy_session(&url, &org.ada).await;
    let third = initialize(&url, &org.ada).await;
    assert_eq!(third.status().as_u16(), 429);
    let body: serde_json::Value = third.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("maxSessionsPerUser")
    );
    // A session ended with DELETE frees its place at once.
    let ended = reqwest::Client::new()
        .delete(&url)
        .bearer_auth(&org.ada)
        .header("mcp-session-id", &one)
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .unwrap();
    assert!(ended.status().is_success(), "{}", ended.status());
    let _three = legacy_session(&url, &org.ada).await;
    let fourth = initialize(&url, &org.ada).await;
    assert_eq!(fourth.status().as_u16(), 429, "two open again: refused");
    // Another user of the same tenant is not affected.
    assert!(
        try_connect(&url, Era::Legacy, Some(&org.root))
            .await
            .is_ok()
    );
    db.cleanup().await;
}
