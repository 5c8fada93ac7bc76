//! The audit trail: per-tenant hash chains appended in batches, verified end to end, refused
//! updates and deletes (triggers), tampering made around the triggers caught by `verify`, two
//! stores (as two replicas) appending to the same chains at once, one batch over many
//! chains, and every field stored exactly as written whatever it holds (a batch travels to
//! the database as one JSON document).

use switchboard_domain::audit::{AuditEvent, AuditKind, ChainBreak, ChainHead, PLATFORM_CHAIN};
use switchboard_domain::tenancy::TenantId;

use crate::harness::{Db, Engine};
use crate::tenants::db_conn;

both!(
    chains_append_and_verify,
    records_are_append_only_and_tampering_is_caught,
    two_stores_append_to_one_chain,
    one_batch_extends_many_chains,
    retention_removes_only_old_records_and_the_rest_still_verifies,
    hostile_text_is_stored_exactly_and_a_full_batch_in_one_statement,
);

fn event(tenant: Option<&str>, n: usize) -> AuditEvent {
    AuditEvent {
        tenant: tenant.map(|t| TenantId::new(t).unwrap()),
        at_ms: 1_800_000_000_000 + n as i64,
        kind: AuditKind::Call,
        actor: "user:ada@acme.com".into(),
        credential: "k1".into(),
        target: "git/log".into(),
        outcome: "ok".into(),
        reason: String::new(),
        detail: format!(r#"{{"n":{n},"quote":"it's \"fine\""}}"#),
    }
}

async fn chains_append_and_verify(db: Db) {
    let store = &db.store;
    assert_eq!(store.append_audit(&[]).await.unwrap(), 0);
    for batch in 0..3 {
        let events: Vec<_> = (0..4)
            .flat_map(|i| {
                let n = batch * 4 + i;
                [
                    event(Some("acme"), n),
                    event(Some("globex"), n),
                    event(None, n),
                ]
            })
            .collect();
        assert_eq!(store.append_audit(&events).await.unwrap(), 12);
    }
    assert_eq!(
        store.audit_chains().await.unwrap(),
        vec![PLATFORM_CHAIN.to_owned(), "acme".into(), "globex".into()]
    );
    for chain in ["acme", "globex", PLATFORM_CHAIN] {
        assert_eq!(store.verify_audit(chain).await.unwrap(), Ok(12), "{chain}");
    }
    let page = store.audit_page("acme", 4, 3).await.unwrap();
    assert_eq!(
        page.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![5, 6, 7]
    );
    assert_eq!(page[0].event, event(Some("acme"), 4));
    assert_eq!(page[1].prev_hash, page[0].hash);
    assert_eq!(store.audit_head("acme").await.unwrap().seq, 12);
    // A chain with no records verifies as empty.
    assert_eq!(store.verify_audit("initech").await.unwrap(), Ok(0));
}

async fn records_are_append_only_and_tampering_is_caught(db: Db) {
    let store = &db.store;
    for tenant in ["acme", "globex", "initech", "umbrella"] {
        let events: Vec<_> = (0..5).map(|n| event(Some(tenant), n)).collect();
        store.append_audit(&events).await.unwrap();
    }
    // The store's own connection may not change a record.
    let mut tx = db_conn(&db).await;
    let err = sqlx::query("UPDATE audit_events SET outcome = 'error' WHERE seq = 3")
        .execute(&mut *tx)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
    drop(tx);
    let mut tx = db_conn(&db).await;
    let err = sqlx::query("DELETE FROM audit_events WHERE seq = 3")
        .execute(&mut *tx)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
    drop(tx);
    // Someone with the rights to remove the triggers tampers anyway.
    let mut tx = db_conn(&db).await;
    let disable: &[&str] = match db.engine {
        Engine::Sqlite => &[
            "DROP TRIGGER audit_events_no_update",
            "DROP TRIGGER audit_events_no_delete",
        ],
        Engine::Postgres => &["ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only"],
    };
    for sql in disable {
        sqlx::query(*sql).execute(&mut *tx).await.unwrap();
    }
    for sql in [
        "UPDATE audit_events SET outcome = 'error' WHERE tenant_id = 'acme' AND seq = 3",
        "DELETE FROM audit_events WHERE tenant_id = 'globex' AND seq = 2",
        "DELETE FROM audit_events WHERE tenant_id = 'initech' AND seq >= 4",
        // Swap records 2 and 3 of umbrella, numbers and all.
        "UPDATE audit_events SET seq = -1 WHERE tenant_id = 'umbrella' AND seq = 2",
        "UPDATE audit_events SET seq = 2 WHERE tenant_id = 'umbrella' AND seq = 3",
        "UPDATE audit_events SET seq = 3 WHERE tenant_id = 'umbrella' AND seq = -1",
    ] {
        sqlx::query(sql).execute(&mut *tx).await.unwrap();
    }
    tx.commit().await.unwrap();
    let verify = |chain| store.verify_audit(chain);
    assert_eq!(
        verify("acme").await.unwrap(),
        Err(ChainBreak::Edited { seq: 3 })
    );
    assert_eq!(
        verify("globex").await.unwrap(),
        Err(ChainBreak::Missing {
            expected: 2,
            found: 3
        })
    );
    assert_eq!(
        verify("initech").await.unwrap(),
        Err(ChainBreak::Truncated { last: 3, head: 5 })
    );
    assert_eq!(
        verify("umbrella").await.unwrap(),
        Err(ChainBreak::Unlinked { seq: 2 })
    );
    let message = verify("acme").await.unwrap().unwrap_err().to_string();
    assert!(message.contains("record 3 was edited"), "{message}");
}

async fn two_stores_append_to_one_chain(db: Db) {
    let other = switchboard_store::Store::connect(&db.url).await.unwrap();
    let tasks: Vec<_> = [db.store.clone(), other]
        .into_iter()
        .enumerate()
        .map(|(side, store)| {
            tokio::spawn(async move {
                // The two sides name the chains in opposite orders: their locks must not
                // deadlock (every writer takes them in name order).
                let mut chains = ["acme", "globex", "initech"];
                if side == 1 {
                    chains.reverse();
                }
                for batch in 0..10 {
                    let events: Vec<_> = chains
                        .iter()
                        .flat_map(|chain| {
                            (0..5).map(move |i| event(Some(chain), side * 1000 + batch * 5 + i))
                        })
                        .collect();
                    store.append_audit(&events).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    for chain in ["acme", "globex", "initech"] {
        assert_eq!(
            db.store.verify_audit(chain).await.unwrap(),
            Ok(100),
            "{chain}"
        );
    }
}

/// A batch spanning more chains than one head statement holds (as a gateway serving many
/// tenants writes): every chain gets its records, in order, and verifies.
async fn one_batch_extends_many_chains(db: Db) {
    let tenants: Vec<String> = (0..600).map(|i| format!("t{i:04}")).collect();
    for round in 0..2 {
        let events: Vec<_> = tenants
            .iter()
            .flat_map(|t| [event(Some(t), round * 2), event(Some(t), round * 2 + 1)])
            .collect();
        assert_eq!(db.store.append_audit(&events).await.unwrap(), 1200);
    }
    for chain in ["t0000", "t0499", "t0500", "t0599"] {
        assert_eq!(
            db.store.verify_audit(chain).await.unwrap(),
            Ok(4),
            "{chain}"
        );
        assert_eq!(db.store.audit_head(chain).await.unwrap().seq, 4);
    }
    let page = db.store.audit_page("t0500", 0, 10).await.unwrap();
    assert_eq!(
        page.iter().map(|r| r.event.at_ms).collect::<Vec<_>>(),
        (0..4).map(|n| 1_800_000_000_000 + n).collect::<Vec<i64>>()
    );
}

async fn retention_removes_only_old_records_and_the_rest_still_verifies(db: Db) {
    let store = &db.store;
    let events: Vec<_> = (0..10).map(|n| event(Some("acme"), n)).collect();
    store.append_audit(&events).await.unwrap();
    store
        .append_audit(&[event(Some("globex"), 0), event(Some("globex"), 1)])
        .await
        .unwrap();
    // Records 1..=4 carry times before n = 4.
    let before = event(None, 4).at_ms;
    let (anchor, removed) = store.prune_audit("acme", before).await.unwrap().unwrap();
    assert_eq!((anchor.seq, removed), (4, 4));
    assert_eq!(store.audit_anchor("acme").await.unwrap(), anchor);
    assert_eq!(
        store.verify_audit("acme").await.unwrap(),
        Ok(6),
        "the rest verifies"
    );
    assert_eq!(store.audit_page("acme", 0, 100).await.unwrap()[0].seq, 5);
    // Nothing older left: a second run removes nothing; another tenant is untouched.
    assert!(store.prune_audit("acme", before).await.unwrap().is_none());
    assert_eq!(store.verify_audit("globex").await.unwrap(), Ok(2));
    assert_eq!(
        store.audit_anchor("globex").await.unwrap(),
        ChainHead::genesis()
    );
    // Appending goes on after a prune, and the chain still verifies.
    store
        .append_audit(&[event(Some("acme"), 10)])
        .await
        .unwrap();
    assert_eq!(store.verify_audit("acme").await.unwrap(), Ok(7));

    // The triggers still refuse deleting a record past the anchor, and moving the anchor
    // back or removing it.
    for sql in [
        "DELETE FROM audit_events WHERE tenant_id = 'acme' AND seq = 6",
        "UPDATE audit_anchors SET seq = 2 WHERE tenant_id = 'acme'",
        "DELETE FROM audit_anchors WHERE tenant_id = 'acme'",
    ] {
        let mut tx = db_conn(&db).await;
        let err = sqlx::query(sql).execute(&mut *tx).await.unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("append-only") || message.contains("anchor"),
            "{sql}: {message}"
        );
    }
    // Moving the anchor forward by hand (around retention) shows as an unlinked record.
    let mut tx = db_conn(&db).await;
    sqlx::query("UPDATE audit_anchors SET seq = 6 WHERE tenant_id = 'acme'")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(store.verify_audit("acme").await.unwrap().is_err());
}

async fn hostile_text_is_stored_exactly_and_a_full_batch_in_one_statement(db: Db) {
    let store = &db.store;
    let hostile = [
        r#"quote " backslash \ slash / apostrophe '"#,
        "control \u{1} \u{1f} tab \t newline \n return \r",
        "line separators \u{2028} \u{2029}, emoji 🦀, accents ñé, CJK 漢字",
        r#"{"looks":"like json","n":[1,2]}"#,
        "[\"an\",\"array\"]",
        "null",
        "",
        "12345678901234567890",
    ];
    // More records than one batch of the writer holds (500), fields of every kind.
    let events: Vec<AuditEvent> = (0..1_200)
        .map(|n| {
            let text = |k: usize| hostile[(n + k) % hostile.len()].to_owned();
            AuditEvent {
                tenant: Some(TenantId::new("acme").unwrap()),
                at_ms: if n == 0 { i64::MAX } else { n as i64 },
                kind: AuditKind::Call,
                actor: text(0),
                credential: text(1),
                target: text(2),
                outcome: text(3),
                reason: text(4) + &"x".repeat(n % 7 * 1000),
                detail: text(5),
            }
        })
        .collect();
    assert_eq!(store.append_audit(&events).await.unwrap(), 1_200);
    assert_eq!(store.verify_audit("acme").await.unwrap(), Ok(1_200));
    let mut read = Vec::new();
    let mut after = 0;
    loop {
        let page = store.audit_page("acme", after, 500).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.seq;
        read.extend(page);
    }
    assert_eq!(read.len(), 1_200);
    for (n, (record, event)) in read.iter().zip(&events).enumerate() {
        assert_eq!(record.seq, n as i64 + 1);
        assert_eq!(&record.event, event, "record {}", n + 1);
    }
}
