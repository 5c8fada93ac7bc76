//! `/admin/v1/docs`: the OpenAPI document rendered as one self-contained HTML page (no
//! scripts, no CDN: it works on an air-gapped network and under a strict CSP). Tools that
//! want more (Swagger UI, Redoc, client generators) read `/admin/v1/openapi.json`.

use utoipa::openapi::OpenApi;
use utoipa::openapi::path::Operation;

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

/// The page, rendered once at start-up.
pub fn page(doc: &OpenApi) -> String {
    let mut rows = String::new();
    for (path, item) in &doc.paths.paths {
        let operations: [(&str, &Option<Operation>); 5] = [
            ("GET", &item.get),
            ("POST", &item.post),
            ("PUT", &item.put),
            ("PATCH", &item.patch),
            ("DELETE", &item.delete),
        ];
        for (method, operation) in operations {
            let Some(op) = operation else { continue };
            let tag = op
                .tags
                .as_ref()
                .and_then(|t| t.first())
                .map_or("", String::as_str);
            let summary = op.summary.as_deref().unwrap_or("");
            let description = op.description.as_deref().unwrap_or("");
            rows.push_str(&format!(
                "<tr><td>{}</td><td><code>{method}</code></td><td><code>{}</code></td>\
                 <td><b>{}</b><br>{}</td></tr>\n",
                escape(tag),
                escape(path),
                escape(summary),
                escape(description)
            ));
        }
    }
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>{title}</title><style>\
         body{{font-family:system-ui,sans-serif;margin:2rem;max-width:75rem}}\
         table{{border-collapse:collapse;width:100%}}\
         td,th{{border-bottom:1px solid #ddd;padding:.4rem;vertical-align:top;text-align:left}}\
         code{{white-space:nowrap}}</style></head><body>\
         <h1>{title} <small>{version}</small></h1><p>{description}</p>\
         <p>Machine-readable: <a href=\"/admin/v1/openapi.json\">/admin/v1/openapi.json</a> \
         (OpenAPI 3.1).</p>\
         <table><tr><th>Area</th><th>Method</th><th>Path</th><th>What it does</th></tr>\n{rows}\
         </table></body></html>",
        title = escape(&doc.info.title),
        version = escape(&doc.info.version),
        description = escape(doc.info.description.as_deref().unwrap_or("")),
    )
}
