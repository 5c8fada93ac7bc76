//! One measurement: a target reached directly (or through the baseline gateway) and through
//! the gateway under test, in interleaved rounds; the row it adds to the report.

use std::time::Duration;

use anyhow::bail;
use serde::Serialize;

use crate::load::{self, Call, Sample};
use crate::mcp::{Endpoint, Era};

/// How long each side runs per round, and how many rounds.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    pub seconds: Duration,
    pub rounds: usize,
}

#[derive(Serialize)]
pub struct Side {
    pub throughput: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub ok: u64,
    pub errors: u64,
}

impl From<&Sample> for Side {
    fn from(s: &Sample) -> Self {
        Side {
            throughput: s.throughput(),
            p50_ms: s.percentile_ms(50.0),
            p99_ms: s.percentile_ms(99.0),
            p999_ms: s.percentile_ms(99.9),
            ok: s.ok,
            errors: s.errors,
        }
    }
}

#[derive(Serialize)]
pub struct Row {
    pub upstream: String,
    pub scenario: String,
    pub era: Era,
    pub concurrency: usize,
    pub rate: Option<f64>,
    pub direct: Side,
    pub gateway: Side,
    pub throughput_ratio: f64,
    pub added_p50_ms: f64,
    pub added_p99_ms: f64,
}

pub struct Target {
    pub upstream: &'static str,
    /// The baseline (a direct connection, or for the auth scenarios the gateway without
    /// tenants).
    pub direct: Vec<Endpoint>,
    pub gateway: Vec<Endpoint>,
    pub direct_tool: &'static str,
    pub gateway_tool: &'static str,
    pub arguments: serde_json::Value,
    pub eras: Vec<Era>,
}

pub async fn measure(
    target: &Target,
    era: Era,
    scenario: &str,
    concurrency: usize,
    rate: Option<f64>,
    pace: Pace,
) -> anyhow::Result<Row> {
    let Pace { seconds, rounds } = pace;
    let (direct_call, gateway_call) = if scenario == "tools/list" {
        (Call::List, Call::List)
    } else {
        (
            Call::Tool {
                tool: target.direct_tool.into(),
                arguments: target.arguments.clone(),
            },
            Call::Tool {
                tool: target.gateway_tool.into(),
                arguments: target.arguments.clone(),
            },
        )
    };
    let mut direct = Sample::default();
    let mut through = Sample::default();
    for _ in 0..rounds {
        direct.merge(
            load::run(
                &target.direct,
                era,
                &direct_call,
                concurrency,
                seconds,
                rate,
            )
            .await?,
        );
        through.merge(
            load::run(
                &target.gateway,
                era,
                &gateway_call,
                concurrency,
                seconds,
                rate,
            )
            .await?,
        );
    }
    let (d, g) = (Side::from(&direct), Side::from(&through));
    for (label, sample) in [("direct", &direct), ("gateway", &through)] {
        if sample.errors > 0 {
            bail!(
                "{} {scenario} {} c={concurrency} via {label}: {} errors, first: {}",
                target.upstream,
                era.label(),
                sample.errors,
                sample.first_error.clone().unwrap_or_default()
            );
        }
        if sample.ok == 0 {
            bail!(
                "{} {scenario} via {label}: no successful request",
                target.upstream
            );
        }
    }
    Ok(Row {
        upstream: target.upstream.into(),
        scenario: scenario.into(),
        era,
        concurrency,
        rate,
        throughput_ratio: g.throughput / d.throughput.max(1e-9),
        added_p50_ms: g.p50_ms - d.p50_ms,
        added_p99_ms: g.p99_ms - d.p99_ms,
        direct: d,
        gateway: g,
    })
}

pub fn print_row(row: &Row) {
    let rate = row.rate.map(|r| format!("@{r:.0}/s")).unwrap_or_default();
    println!(
        "{:<12} {:<11} {:<10} c={:<3}{:<8} direct {:>8.0}/s p50 {:>6.2} p99 {:>6.2} | gateway {:>8.0}/s p50 {:>6.2} p99 {:>6.2} | ratio {:>5.1}% +p50 {:>5.2} ms +p99 {:>5.2} ms",
        row.upstream,
        row.scenario,
        row.era.label(),
        row.concurrency,
        rate,
        row.direct.throughput,
        row.direct.p50_ms,
        row.direct.p99_ms,
        row.gateway.throughput,
        row.gateway.p50_ms,
        row.gateway.p99_ms,
        row.throughput_ratio * 100.0,
        row.added_p50_ms,
        row.added_p99_ms,
    );
}
