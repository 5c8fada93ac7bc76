//! The in-process limit store: one TAT per key in sharded maps.
//!
//! Written by hand rather than with `governor`: governor's keyed limiter fixes one quota per
//! limiter, while here every tenant may have its own rates (changed at run time), several
//! keys must be decided together (a refused request consumes no budget anywhere), and the
//! arithmetic must be exactly the one the Redis script uses (`switchboard_domain::limits`).

use std::collections::HashMap;
// SipHash (std's `RandomState`), not a faster non-cryptographic hash: keys hold client
// addresses chosen by unauthenticated clients, and a limiter that collisions could slow
// down would be the first thing to attack.
use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use smallvec::SmallVec;
use switchboard_domain::limits::gcra;

use super::{Checks, LimitError, Verdicts};

const SHARDS: usize = 64;
/// Checks between two sweeps of a shard's expired keys.
const SWEEP_EVERY: u32 = 4096;

#[derive(Default)]
struct Shard {
    /// Key → theoretical arrival time (µs since the store's epoch).
    tats: HashMap<String, u64>,
    checks: u32,
}

impl Shard {
    /// Drops keys whose budget is whole again: they hold nothing a new key would not.
    fn sweep(&mut self, now: u64) {
        self.tats.retain(|_, tat| *tat > now);
        self.checks = 0;
    }
}

/// Sharded GCRA state, bounded in keys.
pub struct LocalStore {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    epoch: Instant,
    max_keys_per_shard: usize,
}

impl LocalStore {
    /// A store holding at most about `max_keys` keys at once.
    pub fn new(max_keys: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            // Its own keys: shard choice and bucket choice stay independent.
            hasher: RandomState::new(),
            epoch: Instant::now(),
            max_keys_per_shard: max_keys.div_ceil(SHARDS).max(1),
        }
    }

    fn now(&self) -> u64 {
        // Starts at one second so that "0" (a new key) is always in the past.
        1_000_000 + u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX / 2)
    }

    fn shard_of(&self, key: &str) -> usize {
        (self.hasher.hash_one(key) % SHARDS as u64) as usize
    }

    /// Decides all `checks` together: each gets its verdict, and their budgets are consumed
    /// only when every one admits.
    pub fn check(&self, checks: &Checks) -> Result<Verdicts, LimitError> {
        // A request's few keys: everything below stays on the stack.
        let of_check: SmallVec<[usize; 4]> = checks.iter().map(|c| self.shard_of(c.key)).collect();
        let mut order = of_check.clone();
        order.sort_unstable();
        order.dedup();
        // Locks in ascending shard order, so two checks never wait on each other.
        let mut guards: SmallVec<[MutexGuard<'_, Shard>; 4]> = order
            .iter()
            .map(|&i| self.shards[i].lock().unwrap_or_else(|e| e.into_inner()))
            .collect();
        let now = self.now();
        let guard_of = |shard: usize| order.binary_search(&shard).expect("locked");
        let mut verdicts = Verdicts::new();
        let mut next: SmallVec<[u64; 4]> = SmallVec::new();
        for (check, &shard) in checks.iter().zip(&of_check) {
            let guard = &mut guards[guard_of(shard)];
            guard.checks += 1;
            if guard.checks >= SWEEP_EVERY {
                guard.sweep(now);
            }
            let tat = guard.tats.get(check.key).copied().unwrap_or(0);
            if tat == 0 && guard.tats.len() >= self.max_keys_per_shard {
                guard.sweep(now);
                if guard.tats.len() >= self.max_keys_per_shard {
                    return Err(LimitError::Full);
                }
            }
            let (verdict, tat) = gcra(tat, now, check.rate);
            verdicts.push(verdict);
            next.push(tat);
        }
        if verdicts.iter().all(|v| v.allowed) {
            for ((check, &shard), tat) in checks.iter().zip(&of_check).zip(next) {
                let guard = &mut guards[guard_of(shard)];
                match guard.tats.get_mut(check.key) {
                    Some(stored) => *stored = tat,
                    None => {
                        guard.tats.insert(check.key.to_owned(), tat);
                    }
                }
            }
        }
        Ok(verdicts)
    }

    /// Keys currently held.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).tats.len())
            .sum()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use switchboard_domain::limits::{LimitScope, Rate};

    use super::*;

    /// The checks of `keys`, each with its rate.
    fn checks(keys: &[(&str, &str)]) -> Checks {
        let mut checks = Checks::new();
        for (key, rate) in keys {
            let rate = rate.parse::<Rate>().unwrap();
            checks.push(LimitScope::User, rate, key, format_args!(""));
        }
        checks
    }

    #[test]
    fn a_refused_request_consumes_no_budget_of_the_other_keys() {
        let store = LocalStore::new(1000);
        let both = checks(&[("t", "100/min"), ("u", "2/min")]);
        for _ in 0..2 {
            assert!(store.check(&both).unwrap().iter().all(|v| v.allowed));
        }
        let verdicts = store.check(&both).unwrap();
        assert!(verdicts[0].allowed && !verdicts[1].allowed);
        // The tenant key was charged twice, not three times.
        let tenant = checks(&[("t", "100/min")]);
        assert_eq!(store.check(&tenant).unwrap()[0].remaining, 97);
    }

    #[test]
    fn keys_are_independent() {
        let store = LocalStore::new(1000);
        assert!(store.check(&checks(&[("a", "1/min")])).unwrap()[0].allowed);
        assert!(!store.check(&checks(&[("a", "1/min")])).unwrap()[0].allowed);
        assert!(store.check(&checks(&[("b", "1/min")])).unwrap()[0].allowed);
    }

    #[test]
    fn the_key_table_is_bounded_and_fails_closed_when_full() {
        let store = LocalStore::new(SHARDS); // one key per shard
        let mut full = false;
        for i in 0..10 * SHARDS {
            match store.check(&checks(&[(&format!("k{i}"), "1/day")])) {
                Ok(_) => {}
                Err(LimitError::Full) => full = true,
                Err(other) => panic!("{other}"),
            }
        }
        assert!(full);
        assert!(store.len() <= SHARDS);
    }

    #[test]
    fn expired_keys_are_swept() {
        let store = LocalStore::new(SHARDS);
        // A rate so fast that the key's TAT is in the past by the next check.
        for i in 0..10 * SHARDS {
            store
                .check(&checks(&[(&format!("k{i}"), "1000000/s")]))
                .unwrap();
            std::thread::sleep(std::time::Duration::from_micros(2));
        }
        assert!(store.len() <= SHARDS);
    }
}
