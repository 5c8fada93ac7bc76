//! How answers are printed: tables (identifying columns first) or pretty JSON.

use serde_json::Value;

use super::Output;

/// A usage report as a table, then its quotas.
pub(super) fn print_usage(report: &Value) {
    println!(
        "{} from {} to {}",
        report["tenant"].as_str().unwrap_or(""),
        report["from"].as_str().unwrap_or(""),
        report["to"].as_str().unwrap_or("")
    );
    let rows: Vec<Value> = report["rows"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .map(|row| {
                    let mut flat = row.clone();
                    if let Some(obj) = flat.as_object_mut()
                        && let Some(Value::Object(latency)) = obj.remove("latencyMs")
                    {
                        for (k, v) in latency {
                            obj.insert(format!("ms_{k}"), v);
                        }
                    }
                    flat
                })
                .collect()
        })
        .unwrap_or_default();
    print!("{}", table(&rows));
    if report["truncated"].as_bool() == Some(true) {
        println!("(truncated: narrow the range or the grouping)");
    }
    if let Some(quotas) = report["quotas"].as_object() {
        for (name, q) in quotas {
            println!(
                "quota {name}: {} of {} used, resets at {}",
                q["used"],
                q["limit"],
                q["resetsAt"].as_str().unwrap_or("")
            );
        }
    }
}

fn cell(value: &Value) -> String {
    let text = match value {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        Value::Array(items) if items.iter().all(Value::is_string) => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(","),
        Value::Object(map)
            if map.len() == 2 && map.contains_key("type") && map.contains_key("id") =>
        {
            format!("{}:{}", cell(&map["type"]), cell(&map["id"]))
        }
        other => other.to_string(),
    };
    if text.chars().count() > 60 {
        format!("{}…", text.chars().take(59).collect::<String>())
    } else {
        text
    }
}

const COLUMN_ORDER: &[&str] = &[
    "id",
    "user",
    "name",
    "role",
    "status",
    "plan",
    "owner",
    "grantee",
    "effect",
    "target",
    "disabled",
    "expiresAt",
    "revokedAt",
    "createdAt",
    "version",
    "domains",
    "members",
    "restrictions",
    "description",
    "permissions",
    "settings",
];

fn table(items: &[Value]) -> String {
    let Some(Value::Object(first)) = items.first() else {
        return "(none)\n".to_owned();
    };
    let mut columns: Vec<&String> = first.keys().collect();
    // The identifying columns first, the long ones last (JSON objects come sorted by key).
    let place = |c: &str| {
        COLUMN_ORDER
            .iter()
            .position(|x| *x == c)
            .unwrap_or(COLUMN_ORDER.len())
    };
    columns.sort_by_key(|c| place(c));
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|item| {
            columns
                .iter()
                .map(|c| cell(item.get(c.as_str()).unwrap_or(&Value::Null)))
                .collect()
        })
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([c.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
            + "\n"
    };
    let mut out = line(columns.iter().map(|c| c.to_string()).collect());
    for row in rows {
        out.push_str(&line(row));
    }
    out
}

pub(super) fn print(answer: &Value, output: Output) {
    if output == Output::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(answer).unwrap_or_default()
        );
        return;
    }
    match answer {
        Value::Null => println!("done"),
        Value::Object(map) if map.contains_key("items") => {
            let items = map["items"].as_array().cloned().unwrap_or_default();
            print!("{}", table(&items));
        }
        Value::Object(map) => {
            for (key, value) in map {
                match value {
                    Value::Object(inner) if key != "settings" => {
                        for (k, v) in inner {
                            println!("{key}.{k}: {}", cell(v));
                        }
                    }
                    _ => println!(
                        "{key}: {}",
                        if key == "secret" {
                            value.as_str().unwrap_or("").to_owned()
                        } else {
                            cell(value)
                        }
                    ),
                }
            }
            if map.contains_key("secret") {
                eprintln!("\nThe secret is shown this once: store it now.");
            }
        }
        other => println!("{other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_align_columns_and_flatten_subjects() {
        let items = vec![
            json!({"id": "k1", "owner": {"type": "user", "id": "ada@acme.com"}, "expiresAt": null}),
            json!({"id": "key-two", "owner": {"type": "client", "id": "ci"}, "expiresAt": 5}),
        ];
        let text = table(&items);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[1].contains("user:ada@acme.com") && lines[1].contains('-'));
        assert!(lines[2].starts_with("key-two"));
        assert_eq!(table(&[]), "(none)\n");
    }
}
