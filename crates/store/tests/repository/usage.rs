//! Usage rollups: batches add to existing cells, reports group and sum them (within a time
//! range, inside one tenant), quota sums per tenant and per key, pruning, and tenant deletion.

use switchboard_domain::tenancy::{Identity, ItemKind, Tenant, UserId};
use switchboard_domain::usage::{Counters, UsageKey};
use switchboard_store::UsageGroup;

use crate::fixtures::t;
use crate::harness::Db;

both!(
    usage_batches_add_up_and_reports_group_them,
    usage_stays_inside_its_tenant,
);

const H: i64 = 1_796_083_200; // 2026-12-01T00:00:00Z

fn cell(tenant: &str, hour: i64, principal: &str, key: &str, item: &str) -> UsageKey {
    UsageKey {
        tenant: t(tenant),
        hour,
        principal: match principal.split_once(':') {
            Some(("user", email)) => Identity::User(UserId::new(email).unwrap()),
            _ => panic!("test cells are users: {principal}"),
        },
        credential: key.into(),
        server: "alpha".into(),
        kind: ItemKind::Tool,
        item: item.into(),
    }
}

fn calls(n: u64, latency_us: u64, error: bool) -> Counters {
    let mut c = Counters::default();
    for _ in 0..n {
        c.add_call(error, latency_us, 10, 100);
    }
    c
}

async fn usage_batches_add_up_and_reports_group_them(db: Db) {
    let store = &db.store;
    store
        .create_tenant(&Tenant::new(t("acme"), "Acme"))
        .await
        .unwrap();
    let revision = store.revision().await.unwrap();
    let ada = cell("acme", H, "user:ada@acme.com", "k1", "echo");
    let bob = cell("acme", H + 3_600, "user:bob@acme.com", "k2", "add");
    store
        .add_usage(&[
            (ada.clone(), calls(3, 2_000, false)),
            (bob.clone(), calls(2, 200_000, true)),
        ])
        .await
        .unwrap();
    // A second batch adds to the same cell.
    store
        .add_usage(&[(ada.clone(), calls(2, 400, false))])
        .await
        .unwrap();
    assert_eq!(
        store.revision().await.unwrap(),
        revision,
        "usage is not part of the directory"
    );

    let acme = store.tenant(&t("acme"));
    let total = acme.usage_report(H, H + 86_400, &[]).await.unwrap();
    assert_eq!(total.len(), 1);
    let c = total[0].counters;
    assert_eq!(
        (c.calls, c.errors, c.bytes_in, c.bytes_out),
        (7, 2, 70, 700)
    );
    assert_eq!(c.latency_max_us, 200_000);
    assert_eq!(c.buckets, [2, 3, 0, 0, 2, 0, 0]);

    let by_user = acme
        .usage_report(H, H + 86_400, &[UsageGroup::User])
        .await
        .unwrap();
    let users: Vec<(&str, u64)> = by_user
        .iter()
        .map(|r| (r.group[0].as_str(), r.counters.calls))
        .collect();
    assert_eq!(users, [("user:ada@acme.com", 5), ("user:bob@acme.com", 2)]);
    let by_tool_hour = acme
        .usage_report(H, H + 86_400, &[UsageGroup::Hour, UsageGroup::Tool])
        .await
        .unwrap();
    assert_eq!(
        by_tool_hour[0].group,
        [H.to_string(), "alpha".into(), "tool".into(), "echo".into()]
    );
    assert_eq!(by_tool_hour[1].group[0], (H + 3_600).to_string());
    let by_day = acme
        .usage_report(H, H + 86_400, &[UsageGroup::Day])
        .await
        .unwrap();
    assert_eq!(
        (by_day.len(), by_day[0].group[0].as_str()),
        (1, H.to_string().as_str())
    );
    // The range is [from, to): the second hour is outside [H, H + 3600).
    let first_hour = acme.usage_report(H, H + 3_600, &[]).await.unwrap();
    assert_eq!(first_hour[0].counters.calls, 5);
    let none = acme
        .usage_report(H + 86_400, H + 2 * 86_400, &[UsageGroup::User])
        .await
        .unwrap();
    assert!(none.is_empty());

    // Quota sums: the tenant's, and one key's.
    assert_eq!(
        store.usage_calls_since(&t("acme"), None, H).await.unwrap(),
        7
    );
    assert_eq!(
        store
            .usage_calls_since(&t("acme"), Some("k1"), H)
            .await
            .unwrap(),
        5
    );
    assert_eq!(
        store
            .usage_calls_since(&t("acme"), None, H + 3_600)
            .await
            .unwrap(),
        2
    );

    // Pruning drops old hours only.
    assert_eq!(store.prune_usage(H + 3_600).await.unwrap(), 1);
    assert_eq!(
        store.usage_calls_since(&t("acme"), None, 0).await.unwrap(),
        2
    );
}

async fn usage_stays_inside_its_tenant(db: Db) {
    let store = &db.store;
    for id in ["acme", "globex"] {
        store.create_tenant(&Tenant::new(t(id), id)).await.unwrap();
    }
    store
        .add_usage(&[
            (
                cell("acme", H, "user:ada@acme.com", "", "echo"),
                calls(4, 1_000, false),
            ),
            (
                cell("globex", H, "user:gus@globex.com", "", "echo"),
                calls(9, 1_000, false),
            ),
        ])
        .await
        .unwrap();
    let acme = store
        .tenant(&t("acme"))
        .usage_report(H, H + 3_600, &[UsageGroup::User])
        .await
        .unwrap();
    assert_eq!(acme.len(), 1);
    assert_eq!(
        (acme[0].group[0].as_str(), acme[0].counters.calls),
        ("user:ada@acme.com", 4)
    );
    // Deleting a tenant deletes its usage (a tenant created again with the id starts at 0).
    store.delete_tenant(&t("globex")).await.unwrap();
    assert_eq!(
        store
            .usage_calls_since(&t("globex"), None, 0)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store.usage_calls_since(&t("acme"), None, 0).await.unwrap(),
        4
    );
}
