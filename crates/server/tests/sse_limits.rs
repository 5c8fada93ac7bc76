//! The legacy SSE transport's session limits: per user (`maxSessionsPerUser`) and per tenant
//! (`maxSessions`), counted as streams open and close.

mod support;

use std::time::Duration;

use support::tenancy::gateway_with_session_caps;

#[tokio::test]
async fn sse_sessions_are_bounded_per_user_and_per_tenant() {
    let (gw, org, db) = gateway_with_session_caps(1, Some(1), "sse_keep_alive_ms = 100\n").await;
    let url = format!("{}/t/acme/sse", gw.base);
    let open = |bearer: &str| reqwest::Client::new().get(&url).bearer_auth(bearer).send();
    let first = open(&org.ada).await.unwrap();
    assert_eq!(first.status(), 200);
    let again = open(&org.ada).await.unwrap();
    assert_eq!(again.status(), 429);
    let text = again.text().await.unwrap();
    assert!(text.contains("maxSessionsPerUser"), "{text}");
    let other = open(&org.root).await.unwrap();
    assert_eq!(other.status(), 429, "the tenant's one SSE session is taken");
    let text = other.text().await.unwrap();
    assert!(text.contains("maxSessions)"), "{text}");
    // Another tenant is not affected.
    let globex = reqwest::Client::new()
        .get(format!("{}/t/globex/sse", gw.base))
        .bearer_auth(&org.gus)
        .send()
        .await
        .unwrap();
    assert_eq!(globex.status(), 200);
    // A closed stream frees its place (noticed at the next keep-alive write).
    drop(first);
    let mut status = 0;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let retry = open(&org.root).await.unwrap();
        status = retry.status().as_u16();
        if status == 200 {
            break;
        }
    }
    assert_eq!(status, 200, "the closed stream no longer counts");
    db.cleanup().await;
}
