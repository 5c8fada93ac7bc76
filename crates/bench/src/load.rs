//! The load generator: closed-loop workers (each with its own MCP client and, for the legacy
//! era, its own session), or an open-loop fixed rate; every reply is checked.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::mcp::{Endpoint, Era, McpClient};

/// What one load phase sends.
#[derive(Debug, Clone)]
pub enum Call {
    /// `tools/call` of `tool` with `arguments`.
    Tool { tool: String, arguments: Value },
    /// `tools/list`.
    List,
}

/// The outcome of one load phase.
#[derive(Debug, Default, Clone)]
pub struct Sample {
    pub ok: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub latencies_us: Vec<u32>,
    pub elapsed: Duration,
}

impl Sample {
    pub fn merge(&mut self, other: Sample) {
        self.ok += other.ok;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.latencies_us.extend(other.latencies_us);
        self.elapsed += other.elapsed;
    }

    /// Requests per second over the phase.
    pub fn throughput(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Latency percentile in milliseconds.
    pub fn percentile_ms(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let mut sorted = self.latencies_us.clone();
        sorted.sort_unstable();
        let index = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
        f64::from(sorted[index.min(sorted.len() - 1)]) / 1000.0
    }
}

/// The endpoints (indices out of `len`) worker `worker` of `concurrency` takes in turn: every
/// `concurrency`-th from its own number on, or a single one when there are fewer endpoints
/// than workers.
fn dealt(len: usize, concurrency: usize, worker: usize) -> impl Iterator<Item = usize> {
    (worker % len..len).step_by(concurrency.max(1))
}

/// Runs `call` against `endpoints` with `concurrency` workers for `duration`; with `rate`,
/// the workers share a fixed total request rate (open loop). Endpoints are dealt out to the
/// workers in turn (worker `w` gets `w`, `w + concurrency`, …, or one of them when there are
/// fewer endpoints than workers), and each worker takes its endpoints in rotation — load
/// spread over many tenants.
pub async fn run(
    endpoints: &[Endpoint],
    era: Era,
    call: &Call,
    concurrency: usize,
    duration: Duration,
    rate: Option<f64>,
) -> anyhow::Result<Sample> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency.max(1))
        .tcp_nodelay(true)
        .build()?;
    anyhow::ensure!(!endpoints.is_empty(), "a load phase needs an endpoint");
    let mut clients = Vec::with_capacity(concurrency);
    for worker in 0..concurrency {
        let mut own = Vec::new();
        for i in dealt(endpoints.len(), concurrency, worker) {
            own.push(McpClient::connect(http.clone(), &endpoints[i], era).await?);
        }
        clients.push(own);
    }
    let started = Instant::now();
    let deadline = started + duration;
    let call = Arc::new(call.clone());
    let interval = rate.map(|r| Duration::from_secs_f64(concurrency as f64 / r));
    let workers = clients.into_iter().enumerate().map(|(worker, own)| {
        let call = call.clone();
        tokio::spawn(async move {
            let mut sample = Sample::default();
            let (method, params, name) = match call.as_ref() {
                Call::Tool { tool, arguments } => (
                    "tools/call",
                    json!({"name": tool, "arguments": arguments}),
                    Some(tool.clone()),
                ),
                Call::List => ("tools/list", json!({}), None),
            };
            let mut ticker = interval.map(|i| {
                let mut t = tokio::time::interval(i);
                t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                t
            });
            // Stagger open-loop workers across one interval so they don't fire in bursts.
            if let Some(i) = interval {
                tokio::time::sleep(i.mul_f64(worker as f64 / concurrency as f64)).await;
            }
            let mut id = (worker as u64) << 32;
            let mut turn = own.iter().cycle();
            while Instant::now() < deadline {
                let client = turn.next().expect("every worker has a client");
                if let Some(t) = ticker.as_mut() {
                    t.tick().await;
                }
                id += 1;
                let body = client.body(id, method, params.clone());
                let sent = Instant::now();
                match client.request(&body, name.as_deref()).await {
                    Ok(result) => {
                        let is_error = result.get("isError").and_then(Value::as_bool) == Some(true);
                        if is_error {
                            sample.errors += 1;
                            sample
                                .first_error
                                .get_or_insert_with(|| format!("tool error: {result}"));
                        } else {
                            sample.ok += 1;
                            let micros =
                                sent.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
                            sample.latencies_us.push(micros);
                        }
                    }
                    Err(e) => {
                        sample.errors += 1;
                        sample.first_error.get_or_insert_with(|| e.to_string());
                    }
                }
            }
            // The phase ends with its last reply; closing the sessions is not timed.
            sample.elapsed = started.elapsed();
            drop(turn);
            crate::mcp::close_all(own).await;
            sample
        })
    });
    let mut total = Sample::default();
    for worker in futures::future::join_all(workers).await {
        let mut sample = worker?;
        let elapsed = std::mem::take(&mut sample.elapsed);
        total.merge(sample);
        total.elapsed = total.elapsed.max(elapsed);
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::dealt;

    #[test]
    fn every_endpoint_goes_to_exactly_one_worker_and_every_worker_gets_one() {
        for (len, concurrency) in [(1000, 16), (1000, 1), (5, 16), (16, 16), (1, 64)] {
            let dealt: Vec<Vec<usize>> = (0..concurrency)
                .map(|w| dealt(len, concurrency, w).collect())
                .collect();
            assert!(
                dealt.iter().all(|own| !own.is_empty()),
                "{len}/{concurrency}"
            );
            if len >= concurrency {
                let mut all: Vec<usize> = dealt.concat();
                all.sort_unstable();
                assert_eq!(all, (0..len).collect::<Vec<_>>(), "{len}/{concurrency}");
            }
        }
    }
}
