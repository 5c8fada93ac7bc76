//! What is made from a run's JSON report: the plot of latency against load (SVG), and the
//! comparison of two runs (every ratio of the second within a tolerance of the first's).
//! Both read the report as written, so they work on saved files too.

use std::fmt::Write as _;

use anyhow::{Context, bail};

use serde_json::Value;

/// The identity of a row across runs.
fn key(row: &Value) -> String {
    format!(
        "{} {} {} c={}{}",
        row["upstream"].as_str().unwrap_or("?"),
        row["scenario"].as_str().unwrap_or("?"),
        row["era"].as_str().unwrap_or("?"),
        row["concurrency"],
        row["rate"]
            .as_f64()
            .map(|r| format!(" @{r}/s"))
            .unwrap_or_default()
    )
}

/// One ratio compared between two runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Difference {
    pub row: String,
    pub first: f64,
    pub second: f64,
    /// `second / first - 1`.
    pub change: f64,
}

impl Difference {
    pub fn within(&self, tolerance: f64) -> bool {
        self.change.abs() <= tolerance
    }
}

/// The throughput ratio (gateway ÷ direct) of every row both runs have.
pub fn compare(first: &Value, second: &Value) -> Vec<Difference> {
    let rows = |report: &Value| -> Vec<(String, f64)> {
        report["rows"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["rate"].is_null())
            .filter_map(|r| Some((key(r), r["throughput_ratio"].as_f64()?)))
            .collect()
    };
    let later = rows(second);
    rows(first)
        .into_iter()
        .filter_map(|(row, a)| {
            let (_, b) = later.iter().find(|(k, _)| *k == row)?;
            (a > 0.0).then(|| Difference {
                change: b / a - 1.0,
                row,
                first: a,
                second: *b,
            })
        })
        .collect()
}

/// One measurement: throughput achieved, p50 and p99 latency (ms).
type Point = (f64, f64, f64);

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 460.0;
const LEFT: f64 = 70.0;
const BOTTOM: f64 = 50.0;
const COLORS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf",
];

/// Latency (p50 solid, p99 dashed, ms) against load (requests per second achieved) for each
/// `tools/call` series at rising concurrency, direct and through the gateway.
pub fn plot_svg(report: &Value) -> String {
    let mut series: Vec<(String, Vec<Point>)> = Vec::new();
    for row in report["rows"].as_array().into_iter().flatten() {
        if row["scenario"] != "tools/call" || !row["rate"].is_null() {
            continue;
        }
        for side in ["direct", "gateway"] {
            let label = format!(
                "{} {} {side}",
                row["upstream"].as_str().unwrap_or("?"),
                row["era"].as_str().unwrap_or("?")
            );
            let s = &row[side];
            let point = (
                s["throughput"].as_f64().unwrap_or(0.0),
                s["p50_ms"].as_f64().unwrap_or(0.0),
                s["p99_ms"].as_f64().unwrap_or(0.0),
            );
            match series.iter_mut().find(|(l, _)| *l == label) {
                Some((_, points)) => points.push(point),
                None => series.push((label, vec![point])),
            }
        }
    }
    let max_x = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|p| p.0))
        .fold(1.0, f64::max);
    let max_y = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|p| p.2))
        .fold(0.1, f64::max);
    let x = |v: f64| LEFT + v / max_x * (WIDTH - LEFT - 200.0);
    let y = |v: f64| HEIGHT - BOTTOM - v / max_y * (HEIGHT - BOTTOM - 20.0);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="11">"#
    );
    let _ = write!(
        svg,
        r#"<rect width="100%" height="100%" fill="white"/><line x1="{LEFT}" y1="{b}" x2="{r}" y2="{b}" stroke="black"/><line x1="{LEFT}" y1="20" x2="{LEFT}" y2="{b}" stroke="black"/>"#,
        b = HEIGHT - BOTTOM,
        r = WIDTH - 200.0
    );
    for i in 0..=4 {
        let (vx, vy) = (max_x * f64::from(i) / 4.0, max_y * f64::from(i) / 4.0);
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{vx:.0}</text><text x="{:.1}" y="{:.1}" text-anchor="end">{vy:.2}</text>"#,
            x(vx),
            HEIGHT - BOTTOM + 15.0,
            LEFT - 5.0,
            y(vy) + 4.0
        );
    }
    let _ = write!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">requests per second (concurrency 1, 16, 64)</text><text x="15" y="{:.1}" transform="rotate(-90 15 {:.1})" text-anchor="middle">latency, ms (p50 solid, p99 dashed)</text>"#,
        (LEFT + WIDTH - 200.0) / 2.0,
        HEIGHT - 12.0,
        HEIGHT / 2.0,
        HEIGHT / 2.0
    );
    for (i, (label, points)) in series.iter_mut().enumerate() {
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        let color = COLORS[i % COLORS.len()];
        for (dash, pick) in [("", 1usize), (r#" stroke-dasharray="4 3""#, 2)] {
            let path: Vec<String> = points
                .iter()
                .map(|p| {
                    let v = if pick == 1 { p.1 } else { p.2 };
                    format!("{:.1},{:.1}", x(p.0), y(v))
                })
                .collect();
            let _ = write!(
                svg,
                r#"<polyline fill="none" stroke="{color}" stroke-width="1.5"{dash} points="{}"/>"#,
                path.join(" ")
            );
        }
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" fill="{color}">{}</text>"#,
            WIDTH - 190.0,
            30.0 + 16.0 * i as f64,
            label.replace('&', "&amp;").replace('<', "&lt;")
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// `--compare`: prints each ratio of both runs and fails when one moved more than
/// `tolerance`.
pub fn compare_runs(
    first: &std::path::Path,
    second: &std::path::Path,
    tolerance: f64,
) -> anyhow::Result<()> {
    let read = |path: &std::path::Path| -> anyhow::Result<serde_json::Value> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{} is not a report", path.display()))
    };
    let diffs = compare(&read(first)?, &read(second)?);
    if diffs.is_empty() {
        bail!("the two reports have no scenario in common");
    }
    let mut outside = 0;
    for d in &diffs {
        let flag = if d.within(tolerance) {
            ""
        } else {
            "  <-- outside"
        };
        if !d.within(tolerance) {
            outside += 1;
        }
        println!(
            "{:<48} {:>6.1} % -> {:>6.1} %  ({:+.1} %){flag}",
            d.row,
            d.first * 100.0,
            d.second * 100.0,
            d.change * 100.0
        );
    }
    if outside > 0 {
        bail!(
            "{outside} of {} ratios moved more than {:.0} %",
            diffs.len(),
            tolerance * 100.0
        );
    }
    println!(
        "every ratio within {:.0} % ({} compared)",
        tolerance * 100.0,
        diffs.len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn report(ratio: f64) -> Value {
        let side = |t: f64| json!({"throughput": t, "p50_ms": 1.0, "p99_ms": 2.0});
        json!({"rows": [
            {"upstream": "demo", "scenario": "tools/call", "era": "modern", "concurrency": 1,
             "rate": null, "direct": side(1000.0), "gateway": side(800.0), "throughput_ratio": ratio},
            {"upstream": "demo", "scenario": "tools/call", "era": "modern", "concurrency": 16,
             "rate": null, "direct": side(4000.0), "gateway": side(2000.0), "throughput_ratio": 0.5},
            {"upstream": "demo", "scenario": "tools/call", "era": "modern", "concurrency": 16,
             "rate": 1000.0, "direct": side(1000.0), "gateway": side(1000.0), "throughput_ratio": 1.0},
        ]})
    }

    #[test]
    fn a_second_run_is_compared_ratio_by_ratio() {
        let diffs = compare(&report(0.8), &report(0.9));
        assert_eq!(
            diffs.len(),
            2,
            "the fixed-rate row has no throughput ratio to compare"
        );
        assert!(diffs[0].within(0.15) && (diffs[0].change - 0.125).abs() < 1e-9);
        let diffs = compare(&report(0.8), &report(0.6));
        assert!(!diffs[0].within(0.15), "a 25 % drop is flagged");
        assert!(diffs[1].within(0.15));
    }

    #[test]
    fn the_plot_has_a_line_per_series_and_side() {
        let svg = plot_svg(&report(0.8));
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert_eq!(
            svg.matches("<polyline").count(),
            4,
            "direct and gateway, p50 and p99"
        );
        assert!(svg.contains("demo modern gateway"));
    }
}
