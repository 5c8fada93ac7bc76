//! The shared limit store: GCRA in one Lua script on Redis, so that every replica charges the
//! same budgets atomically.
//!
//! One round trip decides all of a request's keys: the script reads every key's TAT, takes
//! the time from Redis itself (replicas' clocks never disagree), and writes the new TATs —
//! with an expiry at which the budget is whole again — only when every key admits. It returns
//! the time and the TATs it read; the verdicts (remaining, reset, retry) are computed here by
//! the same function the in-process store uses. A tenant's keys share a `{tenant}` hash tag;
//! the platform-wide address key, decided in the same script, names no tenant — one Redis
//! server holds them all (the client does not speak the Cluster protocol).

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use switchboard_domain::limits::gcra;

use super::{Checks, LimitError, Verdicts};

const SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local n = #KEYS
local tats = {}
local news = {}
local admit = 1
for i = 1, n do
  local emission = tonumber(ARGV[2 * i - 1])
  local period = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0') or 0
  tats[i] = tat
  local new_tat = math.max(tat, now) + emission
  if now < new_tat - period then admit = 0 end
  news[i] = new_tat
end
if admit == 1 then
  for i = 1, n do
    redis.call('SET', KEYS[i], string.format('%.0f', news[i]), 'PX', math.ceil((news[i] - now) / 1000) + 1)
  end
end
local reply = {admit, now}
for i = 1, n do reply[i + 2] = tats[i] end
return reply
";

/// Redis behind the limiter.
pub struct RedisStore {
    conn: ConnectionManager,
    script: redis::Script,
    timeout: Duration,
}

impl RedisStore {
    /// A store for `url` (`redis://host:port[/db]`); connects lazily and reconnects by
    /// itself. Every call is bounded by `timeout`.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, LimitError> {
        let client = redis::Client::open(url).map_err(|err| {
            LimitError::Config(format!(
                "the Redis URL is not valid ({err}); write it like redis://127.0.0.1:6379"
            ))
        })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let conn = ConnectionManager::new_lazy_with_config(client, config).map_err(|err| {
            LimitError::Config(format!("cannot set up the Redis connection: {err}"))
        })?;
        Ok(Self {
            conn,
            script: redis::Script::new(SCRIPT),
            timeout,
        })
    }

    /// Decides all `checks` together (see the module documentation).
    pub async fn check(&self, checks: &Checks) -> Result<Verdicts, LimitError> {
        let mut invocation = self.script.prepare_invoke();
        for check in checks.iter() {
            invocation
                .key(check.key)
                .arg(check.rate.emission_us())
                .arg(check.rate.period_us());
        }
        let mut conn = self.conn.clone();
        let reply: Vec<i64> =
            match tokio::time::timeout(self.timeout, invocation.invoke_async(&mut conn)).await {
                Ok(Ok(reply)) => reply,
                Ok(Err(err)) => return Err(LimitError::Unavailable(err.to_string())),
                Err(_) => {
                    return Err(LimitError::Unavailable(format!(
                        "no answer within {} ms",
                        self.timeout.as_millis()
                    )));
                }
            };
        if reply.len() != checks.len() + 2 {
            return Err(LimitError::Unavailable(format!(
                "the rate-limit script answered {} values for {} keys",
                reply.len(),
                checks.len()
            )));
        }
        let now = u64::try_from(reply[1]).unwrap_or(0);
        Ok(checks
            .iter()
            .zip(&reply[2..])
            .map(|(check, &tat)| gcra(u64::try_from(tat).unwrap_or(0), now, check.rate).0)
            .collect())
    }

    /// Whether Redis answers a PING within the timeout.
    pub async fn ping(&self) -> Result<(), LimitError> {
        let mut conn = self.conn.clone();
        let command = redis::cmd("PING");
        let ping = command.query_async::<String>(&mut conn);
        match tokio::time::timeout(self.timeout, ping).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(err)) => Err(LimitError::Unavailable(err.to_string())),
            Err(_) => Err(LimitError::Unavailable(format!(
                "no answer within {} ms",
                self.timeout.as_millis()
            ))),
        }
    }
}
