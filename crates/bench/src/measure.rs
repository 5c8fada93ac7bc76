//! One measurement: a target reached directly (or through the baseline gateway) and through
//! the gateway under test, in interleaved rounds; the row it adds to the report.

use std::time::Duration;

use anyhow::bail;
use serde::Serialize;

use crate::load::{self, Call, Sample};
use crate::mcp::{Endpoint, Era};
use crate::procs::cpu_time;

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
    /// CPU time the side's process used per successful request, when the benchmark started
    /// that process (a gateway, or the in-repository upstream).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_us_per_call: Option<f64>,
}

impl Side {
    fn of(s: &Sample, cpu: Option<Duration>) -> Self {
        Side {
            throughput: s.throughput(),
            p50_ms: s.percentile_ms(50.0),
            p99_ms: s.percentile_ms(99.0),
            p999_ms: s.percentile_ms(99.9),
            ok: s.ok,
            errors: s.errors,
            cpu_us_per_call: cpu.map(|t| t.as_secs_f64() * 1e6 / s.ok.max(1) as f64),
        }
    }
}

/// The processes whose CPU time is charged to each side's requests.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuOf {
    pub direct: Option<u32>,
    pub gateway: Option<u32>,
}

impl CpuOf {
    /// Only the gateway's.
    pub fn gateway(pid: u32) -> Self {
        Self {
            direct: None,
            gateway: Some(pid),
        }
    }

    /// Both sides'.
    pub fn both(direct: u32, gateway: u32) -> Self {
        Self {
            direct: Some(direct),
            gateway: Some(gateway),
        }
    }
}

/// Runs `work`, adding the CPU time `pid` used meanwhile to `total` (left `None` when the
/// process cannot be read).
async fn charged<T>(
    pid: Option<u32>,
    total: &mut Option<Duration>,
    work: impl Future<Output = T>,
) -> T {
    let before = pid.and_then(cpu_time);
    let out = work.await;
    if let (Some(before), Some(after)) = (before, pid.and_then(cpu_time)) {
        *total = Some(total.unwrap_or_default() + after.saturating_sub(before));
    }
    out
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
    pub cpu: CpuOf,
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
    let (mut direct_cpu, mut gateway_cpu) = (None, None);
    for _ in 0..rounds {
        let run = load::run(
            &target.direct,
            era,
            &direct_call,
            concurrency,
            seconds,
            rate,
        );
        direct.merge(charged(target.cpu.direct, &mut direct_cpu, run).await?);
        let run = load::run(
            &target.gateway,
            era,
            &gateway_call,
            concurrency,
            seconds,
            rate,
        );
        through.merge(charged(target.cpu.gateway, &mut gateway_cpu, run).await?);
    }
    let (d, g) = (
        Side::of(&direct, direct_cpu),
        Side::of(&through, gateway_cpu),
    );
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
    let us = |cpu: Option<f64>| cpu.map_or("-".to_owned(), |c| format!("{c:.0}"));
    let cpu = match (row.direct.cpu_us_per_call, row.gateway.cpu_us_per_call) {
        (None, None) => String::new(),
        (d, g) => format!(" | cpu/call {} / {} µs", us(d), us(g)),
    };
    println!(
        "{:<12} {:<11} {:<10} c={:<3}{:<8} direct {:>8.0}/s p50 {:>6.2} p99 {:>6.2} | gateway {:>8.0}/s p50 {:>6.2} p99 {:>6.2} | ratio {:>5.1}% +p50 {:>5.2} ms +p99 {:>5.2} ms{cpu}",
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

/// Per target measured on both sides: CPU per request over all its rows, direct (or
/// baseline gateway) against gateway — steadier than throughput ratios on a shared machine,
/// since the load generator's and the other side's share of the cores does not enter it.
pub fn print_cpu_summary(rows: &[Row]) {
    let mut seen: Vec<&str> = Vec::new();
    for row in rows {
        if seen.contains(&row.upstream.as_str()) {
            continue;
        }
        seen.push(&row.upstream);
        let mut sums = [(0.0, 0u64); 2];
        for r in rows.iter().filter(|r| r.upstream == row.upstream) {
            for (sum, side) in sums.iter_mut().zip([&r.direct, &r.gateway]) {
                if let Some(cpu) = side.cpu_us_per_call {
                    sum.0 += cpu * side.ok as f64;
                    sum.1 += side.ok;
                }
            }
        }
        let [(d, dn), (g, gn)] = sums;
        if dn > 0 && gn > 0 {
            let (d, g) = (d / dn as f64, g / gn as f64);
            println!(
                "{:<12} CPU per request over all rows: baseline {d:.1} µs, gateway {g:.1} µs ({:+.1} %)",
                row.upstream,
                (g / d - 1.0) * 100.0
            );
        }
    }
}
