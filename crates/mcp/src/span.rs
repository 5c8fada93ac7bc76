//! The gateway's own span of a call, when span export is on (`[traces]` in the server).
//!
//! A call that carries a sampled W3C `traceparent` continues that trace: the gateway's span
//! is a child of the client's, and the upstream receives a `traceparent` naming the
//! gateway's span as its parent, so the three hops line up in one trace. A call without one
//! starts a trace, sampled at the configured ratio. Unsampled calls get no span and pass the
//! client's trace context on unchanged, as when export is off.

use std::time::SystemTime;

/// The gateway's span of one call: what the exporter needs besides the call record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallSpan {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    /// The client's span, when the call continued its trace.
    pub parent_span_id: Option<[u8; 8]>,
    pub start: SystemTime,
    /// The client's `tracestate`, passed on.
    pub tracestate: Option<String>,
}

/// Parses a version-00 `traceparent`: trace id, parent id, flags (ids not all zero).
pub(crate) fn parse_traceparent(value: &str) -> Option<([u8; 16], [u8; 8], u8)> {
    let mut parts = value.trim().split('-');
    let (version, trace, parent, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || version != "00" {
        return None;
    }
    let lower_hex = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    if !(lower_hex(trace) && lower_hex(parent) && lower_hex(flags)) {
        return None;
    }
    let mut trace_id = [0u8; 16];
    let mut parent_id = [0u8; 8];
    let mut flag = [0u8; 1];
    decode_hex(trace, &mut trace_id)?;
    decode_hex(parent, &mut parent_id)?;
    decode_hex(flags, &mut flag)?;
    if trace_id == [0; 16] || parent_id == [0; 8] {
        return None;
    }
    Some((trace_id, parent_id, flag[0]))
}

fn decode_hex(text: &str, out: &mut [u8]) -> Option<()> {
    if text.len() != out.len() * 2 {
        return None;
    }
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(())
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    switchboard_domain::audit::to_hex(bytes)
}

fn random_bytes<const N: usize>() -> [u8; N] {
    // uuid's v4 generator is this crate's source of randomness (getrandom): of each UUID's
    // 16 bytes, 14 are entirely random (byte 6 holds the version, byte 8 the variant).
    let mut out = [0u8; N];
    let mut filled = 0;
    while filled < N {
        let uuid = uuid::Uuid::new_v4();
        let b = uuid.as_bytes();
        for &byte in b[..6].iter().chain(&b[7..8]).chain(&b[9..]) {
            if filled == N {
                break;
            }
            out[filled] = byte;
            filled += 1;
        }
    }
    out
}

impl CallSpan {
    /// The span of a call whose HTTP request had `headers` (none on stdio), or `None` when the
    /// call is not sampled: a client's sampled flag decides, else `sample_ratio`.
    pub fn start(headers: Option<&http::HeaderMap>, sample_ratio: f64) -> Option<CallSpan> {
        let parent = headers
            .and_then(|h| h.get("traceparent"))
            .and_then(|v| v.to_str().ok())
            .and_then(parse_traceparent);
        let (trace_id, parent_span_id) = match parent {
            Some((_, _, flags)) if flags & 1 == 0 => return None,
            Some((trace, parent, _)) => (trace, Some(parent)),
            None => {
                let draw = f64::from(u32::from_be_bytes(random_bytes::<4>())) / f64::from(u32::MAX);
                if sample_ratio <= 0.0 || draw > sample_ratio {
                    return None;
                }
                (random_bytes::<16>(), None)
            }
        };
        let tracestate = parent_span_id
            .and(headers)
            .and_then(|h| h.get("tracestate"))
            .and_then(|v| v.to_str().ok())
            .filter(|v| v.len() <= 512)
            .map(str::to_owned);
        Some(CallSpan {
            trace_id,
            span_id: random_bytes::<8>(),
            parent_span_id,
            start: SystemTime::now(),
            tracestate,
        })
    }

    /// The `traceparent` the upstream gets: this span as its parent, sampled.
    pub fn traceparent(&self) -> String {
        format!("00-{}-{}-01", hex(&self.trace_id), hex(&self.span_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(traceparent: &str) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        h.insert("traceparent", traceparent.parse().unwrap());
        h.insert("tracestate", "vendor=1".parse().unwrap());
        h
    }

    #[test]
    fn a_sampled_client_trace_is_continued_and_an_unsampled_one_left_alone() {
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let span = CallSpan::start(Some(&headers(parent)), 0.0).expect("sampled by the client");
        assert_eq!(hex(&span.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(
            span.parent_span_id.map(|p| hex(&p)).as_deref(),
            Some("00f067aa0ba902b7")
        );
        assert_eq!(span.tracestate.as_deref(), Some("vendor=1"));
        let up = span.traceparent();
        assert!(up.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-") && up.ends_with("-01"));
        assert_ne!(
            &up[36..52],
            "00f067aa0ba902b7",
            "the upstream's parent is the gateway's span"
        );
        let unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        assert_eq!(CallSpan::start(Some(&headers(unsampled)), 1.0), None);
    }

    #[test]
    fn without_a_client_trace_the_ratio_decides() {
        assert!(CallSpan::start(None, 1.0).is_some_and(|s| s.parent_span_id.is_none()));
        assert_eq!(CallSpan::start(None, 0.0), None);
        let a = CallSpan::start(None, 1.0).unwrap();
        let b = CallSpan::start(None, 1.0).unwrap();
        assert_ne!(a.trace_id, b.trace_id);
        assert_ne!(a.span_id, [0; 8]);
    }

    #[test]
    fn malformed_traceparents_are_refused() {
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "garbage",
        ] {
            assert_eq!(parse_traceparent(bad), None, "{bad}");
        }
    }
}
