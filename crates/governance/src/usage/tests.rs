//! The meter's tests: cells and their batches, quotas across restarts and replicas.

use super::*;
use switchboard_domain::tenancy::{ItemKind, Tenant};
use switchboard_domain::usage::hour_start;
use switchboard_store::UsageGroup;

async fn store() -> (Store, std::path::PathBuf) {
    let path = std::env::temp_dir().join(format!("sb_usage_{}.db", uuid::Uuid::new_v4().simple()));
    let store = Store::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    store
        .create_tenant(&Tenant::new(TenantId::new("acme").unwrap(), "Acme"))
        .await
        .unwrap();
    (store, path)
}

fn acme() -> TenantId {
    TenantId::new("acme").unwrap()
}

static ACME: std::sync::LazyLock<TenantId> = std::sync::LazyLock::new(acme);
static ADA: std::sync::LazyLock<Identity> = std::sync::LazyLock::new(|| {
    Identity::User(switchboard_domain::tenancy::UserId::new("ada@acme.com").unwrap())
});

fn cell(credential: &str) -> CallCell<'_> {
    CallCell {
        tenant: &ACME,
        hour: hour_start(now()),
        principal: &ADA,
        credential,
        server: "alpha",
        kind: ItemKind::Tool,
        item: "echo",
    }
}

#[test]
fn a_calls_cell_hashes_and_compares_as_its_owned_key() {
    use std::hash::BuildHasher;
    let state = std::hash::RandomState::new();
    let cell = cell("k1");
    let key = cell.to_key();
    assert_eq!(state.hash_one(&cell), state.hash_one(&key));
    let mut cells: hashbrown::HashMap<UsageKey, u32, _> = hashbrown::HashMap::with_hasher(state);
    cells.insert(key, 7);
    assert_eq!(cells.get(&cell), Some(&7));
    // Another credential, server, item or tenant is another cell.
    assert_eq!(cells.get(&self::cell("k2")), None);
    let other = CallCell {
        server: "beta",
        ..self::cell("k1")
    };
    assert_eq!(cells.get(&other), None);
    let globex = TenantId::new("globex").unwrap();
    let foreign = CallCell {
        tenant: &globex,
        ..self::cell("k1")
    };
    assert_eq!(cells.get(&foreign), None);
}

fn slow_flush() -> MeterOptions {
    MeterOptions {
        flush_interval: Duration::from_secs(3600),
        ..MeterOptions::default()
    }
}

#[tokio::test]
async fn calls_are_counted_in_cells_and_written_in_one_batch() {
    let (store, path) = store().await;
    let meter = Meter::start(store.clone(), slow_flush());
    for i in 0..5u64 {
        meter.record(cell("k1"), i == 4, Duration::from_millis(2), 10, 100);
    }
    meter.record(cell("k2"), false, Duration::from_micros(300), 1, 1);
    assert_eq!(meter.stats().pending_cells, 2);
    meter.flush().await;
    assert_eq!(
        meter.stats(),
        MeterStats {
            pending_cells: 0,
            written_cells: 2,
            write_errors: 0
        }
    );
    let rows = store
        .tenant(&acme())
        .usage_report(0, i64::MAX, &[UsageGroup::Key])
        .await
        .unwrap();
    let k1 = &rows[0].counters;
    assert_eq!(
        (rows[0].group[0].as_str(), k1.calls, k1.errors, k1.bytes_out),
        ("k1", 5, 1, 500)
    );
    assert_eq!(rows[1].counters.calls, 1);
    std::fs::remove_file(path).ok();
}

#[tokio::test]
async fn quotas_hold_across_restarts_and_replicas() {
    let (store, path) = store().await;
    let quotas = Quotas {
        calls_per_day: Some(3),
        calls_per_month: Some(100),
    };
    let meter = Meter::start(store.clone(), slow_flush());
    for _ in 0..3 {
        meter.admit(&acme(), "", Some(&quotas), None).await.unwrap();
        meter.record(cell(""), false, Duration::from_millis(1), 0, 0);
    }
    let refused = meter
        .admit(&acme(), "", Some(&quotas), None)
        .await
        .unwrap_err();
    match &refused {
        QuotaError::Exceeded {
            scope,
            period,
            limit,
            resets_at,
        } => {
            assert_eq!(
                (*scope, *period, *limit),
                (QuotaScope::Tenant, Period::Day, 3)
            );
            assert_eq!(*resets_at, Period::Day.end(now()));
        }
        other => panic!("{other:?}"),
    }
    assert!(refused.to_string().contains("3 calls per day"), "{refused}");
    assert_eq!(meter.quota_used(&acme(), None, Period::Day), Some(3));
    meter.flush().await;
    assert_eq!(
        meter.quota_used(&acme(), None, Period::Day),
        Some(3),
        "flushing does not count twice"
    );
    drop(meter);

    // A restart (or another replica) starts from the store: still exhausted.
    let restarted = Meter::start(store.clone(), slow_flush());
    assert!(matches!(
        restarted.admit(&acme(), "", Some(&quotas), None).await,
        Err(QuotaError::Exceeded { .. })
    ));
    // A larger quota admits, and the month count carried over too.
    let more = Quotas {
        calls_per_day: Some(5),
        calls_per_month: Some(4),
    };
    restarted
        .admit(&acme(), "", Some(&more), None)
        .await
        .unwrap();
    assert!(matches!(
        restarted.admit(&acme(), "", Some(&more), None).await,
        Err(QuotaError::Exceeded {
            period: Period::Month,
            ..
        })
    ));
    std::fs::remove_file(path).ok();
}

#[tokio::test]
async fn a_key_s_quota_is_its_own_and_replicas_see_each_other_after_a_flush() {
    let (store, path) = store().await;
    let key_quota = Quotas {
        calls_per_day: Some(2),
        calls_per_month: None,
    };
    let one = Meter::start(store.clone(), slow_flush());
    let two = Meter::start(store.clone(), slow_flush());
    one.admit(&acme(), "k1", None, Some(&key_quota))
        .await
        .unwrap();
    two.admit(&acme(), "k1", None, Some(&key_quota))
        .await
        .unwrap();
    // Each replica has admitted one: neither knows of the other's yet.
    one.record(cell("k1"), false, Duration::from_millis(1), 0, 0);
    one.flush().await;
    two.flush().await;
    assert_eq!(two.quota_used(&acme(), Some("k1"), Period::Day), Some(2));
    assert!(matches!(
        two.admit(&acme(), "k1", None, Some(&key_quota)).await,
        Err(QuotaError::Exceeded {
            scope: QuotaScope::Key,
            ..
        })
    ));
    // Another key, and tokens (no key id), are not held by k1's quota.
    two.admit(&acme(), "k2", None, Some(&key_quota))
        .await
        .unwrap();
    two.admit(&acme(), "", None, Some(&key_quota))
        .await
        .unwrap();
    std::fs::remove_file(path).ok();
}
