//! One repository suite, run against SQLite and PostgreSQL: round trips of every entity,
//! tenant walls, cascades, conflicts, optimistic concurrency, the revision counter, the
//! directory read, corrupt stored values, concurrent writers, and (PostgreSQL only) row-level
//! security as a second wall.
//!
//! A case is an `async fn(Db)`; `both!(case, …)` runs each on a fresh database of each
//! engine (see `harness`). PostgreSQL cases skip when the server is unreachable, unless
//! `SWITCHBOARD_REQUIRE_SERVICES=1`.

/// Declares `<case>::sqlite` and `<case>::postgres` tests for each named case.
macro_rules! both {
    ($($case:ident),* $(,)?) => {$(
        mod $case {
            #[tokio::test]
            async fn sqlite() {
                crate::harness::run(crate::harness::Engine::Sqlite, super::$case).await;
            }
            #[tokio::test]
            async fn postgres() {
                crate::harness::run(crate::harness::Engine::Postgres, super::$case).await;
            }
        }
    )*};
}

mod audit;
mod connect;
mod credentials;
mod directory;
mod fixtures;
mod harness;
mod isolation;
mod members;
mod rls;
mod secrets;
mod servers;
mod tenants;
mod usage;
