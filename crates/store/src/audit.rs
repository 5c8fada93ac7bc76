//! The audit trail's repository: appending events to their tenants' hash chains, reading a
//! chain in pages, and verifying it.
//!
//! Appends take each chain's head row under a write lock (`FOR UPDATE` on PostgreSQL, all the
//! batch's chains in one statement, in name order; SQLite serialises writers with `BEGIN
//! IMMEDIATE`), so replicas writing one tenant's chain at the same time interleave correctly.
//! A batch costs a handful of statements however many tenants' chains it extends. Audit writes do not bump the directory revision: they
//! change nothing the authenticator reads.

use std::collections::{BTreeMap, HashMap};

use sqlx::Row;
use sqlx::any::AnyRow;
use switchboard_domain::audit::{
    AuditEvent, AuditKind, AuditRecord, ChainBreak, ChainHead, GENESIS, Link, PLATFORM_CHAIN,
    Verifier,
};
use switchboard_domain::tenancy::TenantId;

use crate::tx::{Access, Scope};
use crate::{Backend, Result, Store, StoreError};

/// Records read per page when verifying.
const VERIFY_PAGE: i64 = 1000;
/// Most records per `INSERT`. A batch's records travel as one JSON array bound to one
/// parameter and unpacked by the database (`jsonb_each` on SQLite, `json_array_elements` on
/// PostgreSQL): binding twelve parameters per record cost each text field four allocations
/// and two copies through sqlx's `Any` driver, the largest share of the audit log's
/// allocations per call.
const INSERT_ROWS: usize = 1000;
/// Most chains per head statement (3 parameters each in the upserts).
const HEAD_ROWS: usize = 512;

/// `items` cut into runs whose lengths are powers of two up to `most`, longest first. Every
/// statement of a batch then has one of a few texts, each prepared once per pooled
/// connection and reused by later batches: with one text per batch size, every batch
/// re-prepared its statements (the largest cost of writing the audit log on SQLite).
fn runs<T>(mut items: &[T], most: usize) -> impl Iterator<Item = &[T]> {
    debug_assert!(most.is_power_of_two());
    std::iter::from_fn(move || {
        if items.is_empty() {
            return None;
        }
        let len = most.min(1 << items.len().ilog2());
        let (run, rest) = items.split_at(len);
        items = rest;
        Some(run)
    })
}

/// `INSERT … SELECT` unpacking the records of `$1`, a JSON array of 12-element arrays in
/// column order (see [`records_json`]).
///
/// On SQLite, `jsonb_each` rather than `json_each`: `json_each` hands each record back as
/// JSON *text*, which every one of the twelve `->>` then looks up in SQLite's parse cache
/// (comparing the whole text) and re-reads; `jsonb_each` hands it back in SQLite's binary
/// form, read in place. Measured on the bundled SQLite, 300-record batches: 7.5 → 3.6 µs of
/// CPU per record (binding twelve parameters per row, the floor, 2.7 µs). On PostgreSQL the
/// opposite holds (`jsonb` parses the whole batch into its binary form first: 2.6 → 6.7 ms
/// per 300 records), so it stays `json`.
fn insert_sql(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => {
            "INSERT INTO audit_events (tenant_id, seq, at_ms, kind, actor, credential, target, \
             outcome, reason, detail, prev_hash, hash) \
             SELECT value->>0, value->>1, value->>2, value->>3, value->>4, value->>5, value->>6, \
             value->>7, value->>8, value->>9, value->>10, value->>11 FROM jsonb_each($1)"
        }
        Backend::Postgres => {
            "INSERT INTO audit_events (tenant_id, seq, at_ms, kind, actor, credential, target, \
             outcome, reason, detail, prev_hash, hash) \
             SELECT r->>0, (r->>1)::bigint, (r->>2)::bigint, r->>3, r->>4, r->>5, r->>6, \
             r->>7, r->>8, r->>9, r->>10, r->>11 FROM json_array_elements($1::json) AS r"
        }
    }
}

/// The records as one JSON array of arrays, in the columns' order.
fn records_json(records: &[(&str, &AuditEvent, Link)]) -> String {
    let mut out = Vec::with_capacity(records.len() * 512);
    out.push(b'[');
    for (i, (chain, e, link)) in records.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let row = (
            chain,
            link.seq,
            e.at_ms,
            e.kind.as_str(),
            &e.actor,
            &e.credential,
            &e.target,
            &e.outcome,
            &e.reason,
            &e.detail,
            &link.prev_hash,
            &link.hash,
        );
        // Strings and integers into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut out, &row);
    }
    out.push(b']');
    // serde_json writes UTF-8.
    String::from_utf8(out).unwrap_or_default()
}

fn record_from_row(row: &AnyRow) -> Result<AuditRecord> {
    let chain: String = row.try_get("tenant_id")?;
    let tenant = if chain == PLATFORM_CHAIN {
        None
    } else {
        Some(TenantId::new(&chain).map_err(|e| StoreError::corrupt("audit record", e))?)
    };
    let kind: String = row.try_get("kind")?;
    Ok(AuditRecord {
        seq: row.try_get("seq")?,
        event: AuditEvent {
            tenant,
            at_ms: row.try_get("at_ms")?,
            kind: AuditKind::parse(&kind)
                .ok_or_else(|| StoreError::corrupt("audit record", format!("kind {kind:?}")))?,
            actor: row.try_get("actor")?,
            credential: row.try_get("credential")?,
            target: row.try_get("target")?,
            outcome: row.try_get("outcome")?,
            reason: row.try_get("reason")?,
            detail: row.try_get("detail")?,
        },
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}

/// Which records of a chain an audit search returns.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Unix milliseconds, inclusive.
    pub from_ms: Option<i64>,
    /// Unix milliseconds, exclusive.
    pub to_ms: Option<i64>,
    pub kind: Option<AuditKind>,
    /// Exact actor (`user:ada@acme.com`, `client:ci`, `platform-admin`).
    pub actor: Option<String>,
    /// Exact outcome (`allowed`, `denied`, `ok`, `error`, `refused`).
    pub outcome: Option<String>,
    /// Only records after this sequence number (paging oldest first).
    pub after_seq: Option<i64>,
    /// Only records before this sequence number (paging newest first).
    pub before_seq: Option<i64>,
    /// Oldest first instead of newest first.
    pub ascending: bool,
}

impl Store {
    /// Appends `events` to their chains, in order, in one transaction; returns how many
    /// records were written. Nothing is written if any part fails.
    pub async fn append_audit(&self, events: &[AuditEvent]) -> Result<usize> {
        if events.is_empty() {
            return Ok(0);
        }
        let backend = self.backend;
        let mut tx = self.begin(Scope::Platform, Access::Write).await?;
        // Chains in name order (the one order every writer locks them in, so replicas never
        // deadlock), each with its events in order.
        let mut chains: BTreeMap<&str, Vec<&AuditEvent>> = BTreeMap::new();
        for event in events {
            chains.entry(event.chain()).or_default().push(event);
        }
        let names: Vec<&str> = chains.keys().copied().collect();
        // A few statements per batch, however many chains it touches: every chain gets a
        // head row (a new one starts at genesis), then all heads are read — and on
        // PostgreSQL locked — together.
        for chunk in runs(&names, HEAD_ROWS) {
            let mut sql = String::from("INSERT INTO audit_heads (tenant_id, seq, hash) VALUES ");
            crate::tx::push_values(&mut sql, backend, chunk.len(), 3);
            sql.push_str(" ON CONFLICT (tenant_id) DO NOTHING");
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for name in chunk {
                query = query.bind(*name).bind(0i64).bind(GENESIS);
            }
            query.execute(&mut *tx).await?;
        }
        let mut heads: HashMap<String, ChainHead> = HashMap::with_capacity(names.len());
        for chunk in runs(&names, HEAD_ROWS) {
            let mut sql =
                String::from("SELECT tenant_id, seq, hash FROM audit_heads WHERE tenant_id IN ");
            crate::tx::push_values(&mut sql, backend, 1, chunk.len());
            if backend == Backend::Postgres {
                // Byte order, as the chunks are cut in Rust: every writer takes the locks in
                // one order whatever the database's collation.
                sql.push_str(" ORDER BY tenant_id COLLATE \"C\" FOR UPDATE");
            }
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for name in chunk {
                query = query.bind(*name);
            }
            for row in query.fetch_all(&mut *tx).await? {
                heads.insert(
                    row.try_get("tenant_id")?,
                    ChainHead {
                        seq: row.try_get("seq")?,
                        hash: row.try_get("hash")?,
                    },
                );
            }
        }
        let mut records: Vec<(&str, &AuditEvent, Link)> = Vec::with_capacity(events.len());
        for (chain, list) in &chains {
            let head = heads.get_mut(*chain).ok_or_else(|| StoreError::Corrupt {
                what: "audit chain",
                message: format!("the head of chain {chain} vanished while appending"),
            })?;
            records.extend(list.iter().map(|e| (*chain, *e, head.link(e))));
        }
        // One statement per thousand records, whatever their chains.
        for chunk in records.chunks(INSERT_ROWS) {
            let inserted = sqlx::query(insert_sql(backend))
                .bind(records_json(chunk))
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if inserted != chunk.len() as u64 {
                return Err(StoreError::Corrupt {
                    what: "audit chain",
                    message: format!("{inserted} of {} records written", chunk.len()),
                });
            }
        }
        // The heads move to their chains' last records (rows locked above on PostgreSQL).
        for chunk in runs(&names, HEAD_ROWS) {
            let mut sql = String::from("INSERT INTO audit_heads (tenant_id, seq, hash) VALUES ");
            crate::tx::push_values(&mut sql, backend, chunk.len(), 3);
            sql.push_str(
                " ON CONFLICT (tenant_id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for name in chunk {
                let head = &heads[*name];
                query = query.bind(*name).bind(head.seq).bind(head.hash.as_str());
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(events.len())
    }

    /// The names of every chain (tenant ids and `_platform`), sorted.
    pub async fn audit_chains(&self) -> Result<Vec<String>> {
        let mut tx = self.begin(Scope::Platform, Access::Read).await?;
        let rows = sqlx::query("SELECT tenant_id FROM audit_heads ORDER BY tenant_id")
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        rows.iter()
            .map(|r| r.try_get::<String, _>("tenant_id").map_err(Into::into))
            .collect()
    }

    /// The head of `chain` (the genesis head when it has no records).
    pub async fn audit_head(&self, chain: &str) -> Result<ChainHead> {
        self.chain_point(
            "SELECT seq, hash FROM audit_heads WHERE tenant_id = $1",
            chain,
        )
        .await
    }

    /// A chain's point (seq and hash) read by `sql`, or the genesis when there is none.
    async fn chain_point(&self, sql: &'static str, chain: &str) -> Result<ChainHead> {
        let mut tx = self.begin(Scope::Platform, Access::Read).await?;
        let row = sqlx::query(sql)
            .bind(chain.to_owned())
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        match row {
            Some(row) => Ok(ChainHead {
                seq: row.try_get("seq")?,
                hash: row.try_get("hash")?,
            }),
            None => Ok(ChainHead::genesis()),
        }
    }

    /// Up to `limit` records of `chain` after `after_seq`, in order.
    pub async fn audit_page(
        &self,
        chain: &str,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<AuditRecord>> {
        let mut tx = self.begin(Scope::Platform, Access::Read).await?;
        let rows = sqlx::query(
            "SELECT tenant_id, seq, at_ms, kind, actor, credential, target, outcome, reason, \
             detail, prev_hash, hash FROM audit_events WHERE tenant_id = $1 AND seq > $2 \
             ORDER BY seq LIMIT $3",
        )
        .bind(chain.to_owned())
        .bind(after_seq)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.iter().map(record_from_row).collect()
    }

    /// Records of `chain` matching `filter`, newest first (or oldest first with
    /// `filter.ascending`), at most `limit`.
    pub async fn audit_search(
        &self,
        chain: &str,
        filter: &AuditFilter,
        limit: i64,
    ) -> Result<Vec<AuditRecord>> {
        let order = if filter.ascending { "ASC" } else { "DESC" };
        let sql = format!(
            "SELECT tenant_id, seq, at_ms, kind, actor, credential, target, outcome, reason, \
             detail, prev_hash, hash FROM audit_events WHERE tenant_id = $1 \
             AND at_ms >= $2 AND at_ms < $3 AND ($4 = '' OR kind = $4) \
             AND ($5 = '' OR actor = $5) AND ($6 = '' OR outcome = $6) \
             AND seq > $7 AND seq < $8 ORDER BY seq {order} LIMIT $9"
        );
        let mut tx = self.begin(Scope::Platform, Access::Read).await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(chain.to_owned())
            .bind(filter.from_ms.unwrap_or(i64::MIN))
            .bind(filter.to_ms.unwrap_or(i64::MAX))
            .bind(filter.kind.map_or("", AuditKind::as_str))
            .bind(filter.actor.clone().unwrap_or_default())
            .bind(filter.outcome.clone().unwrap_or_default())
            .bind(filter.after_seq.unwrap_or(0))
            .bind(filter.before_seq.unwrap_or(i64::MAX))
            .bind(limit)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        rows.iter().map(record_from_row).collect()
    }

    /// Where `chain` starts: the last record retention removed (the genesis when none was).
    pub async fn audit_anchor(&self, chain: &str) -> Result<ChainHead> {
        self.chain_point(
            "SELECT seq, hash FROM audit_anchors WHERE tenant_id = $1",
            chain,
        )
        .await
    }

    /// Retention: removes `chain`'s records up to the last one stamped before `before_ms`,
    /// moving the chain's anchor to it in the same transaction so the rest still verifies.
    /// Returns the new anchor and how many records went (`None`: nothing to remove).
    pub async fn prune_audit(
        &self,
        chain: &str,
        before_ms: i64,
    ) -> Result<Option<(ChainHead, u64)>> {
        let mut tx = self.begin(Scope::Platform, Access::Write).await?;
        let last = sqlx::query(
            "SELECT seq, hash FROM audit_events WHERE tenant_id = $1 AND at_ms < $2 \
             ORDER BY seq DESC LIMIT 1",
        )
        .bind(chain.to_owned())
        .bind(before_ms)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(last) = last else {
            tx.commit().await?;
            return Ok(None);
        };
        let anchor = ChainHead {
            seq: last.try_get("seq")?,
            hash: last.try_get("hash")?,
        };
        sqlx::query(
            "INSERT INTO audit_anchors (tenant_id, seq, hash, pruned_at_ms) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (tenant_id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, \
             pruned_at_ms = excluded.pruned_at_ms",
        )
        .bind(chain.to_owned())
        .bind(anchor.seq)
        .bind(anchor.hash.clone())
        .bind(crate::now() * 1000)
        .execute(&mut *tx)
        .await?;
        let removed = sqlx::query("DELETE FROM audit_events WHERE tenant_id = $1 AND seq <= $2")
            .bind(chain.to_owned())
            .bind(anchor.seq)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(Some((anchor, removed)))
    }

    /// Verifies `chain` end to end — from its retention anchor — : `Ok(Ok(records))`, or
    /// where it is broken.
    pub async fn verify_audit(&self, chain: &str) -> Result<std::result::Result<i64, ChainBreak>> {
        // The head first: records appended while verifying lie beyond it and are not judged.
        let head = self.audit_head(chain).await?;
        let anchor = self.audit_anchor(chain).await?;
        let start = anchor.seq;
        let mut verifier = Verifier::starting_at(anchor);
        'pages: loop {
            let page = self
                .audit_page(chain, verifier.last_seq(), VERIFY_PAGE)
                .await?;
            let last_page = (page.len() as i64) < VERIFY_PAGE;
            for record in &page {
                if verifier.last_seq() >= head.seq {
                    break 'pages;
                }
                if let Err(broken) = verifier.push(record) {
                    return Ok(Err(broken));
                }
            }
            if last_page {
                break;
            }
        }
        Ok(verifier.finish(&head).map(|last| last - start))
    }
}

#[cfg(test)]
mod tests {
    use super::runs;

    #[test]
    fn runs_are_powers_of_two_longest_first_and_cover_everything() {
        let items: Vec<u32> = (0..1000).collect();
        for n in [0, 1, 2, 3, 7, 200, 255, 256, 257, 1000] {
            let lengths: Vec<usize> = runs(&items[..n], 256).map(<[u32]>::len).collect();
            assert_eq!(lengths.iter().sum::<usize>(), n);
            assert!(lengths.iter().all(|l| l.is_power_of_two() && *l <= 256));
            assert!(lengths.windows(2).all(|w| w[0] >= w[1]), "{lengths:?}");
            let flat: Vec<u32> = runs(&items[..n], 256).flatten().copied().collect();
            assert_eq!(flat, items[..n], "in order, nothing lost");
        }
        let lengths: Vec<usize> = runs(&items[..200], 256).map(<[u32]>::len).collect();
        assert_eq!(lengths, [128, 64, 8]);
    }
}
