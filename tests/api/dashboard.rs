//! The provisioned Grafana dashboards (deploy/grafana/dashboards/*.json) query
//! only metrics a real server exports: calls that produce every labelled
//! series the panels read (a sign-up, sends, a live delivery on a stream, a
//! failing call, a rate-limited call), then a scrape of `/metrics`, and every
//! metric name in every panel's PromQL `expr` must be in it. A misspelled
//! metric in a panel fails this test (see `a_misspelled_metric_is_reported`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use tidings::proto::CreateChatRequest;
use tonic::Code;

use crate::helpers::*;
use crate::realtime::open_events;

both_backends!(every_metric_the_dashboards_query_is_exported);

/// Series Prometheus makes itself for each target (not in `/metrics`).
const SYNTHESISED: &[&str] = &["up"];

async fn every_metric_the_dashboards_query_is_exported(backend: Backend) {
    // One room per minute: the second CreateChat is refused by the limit.
    let app = spawn_app_with(backend, |c| {
        c.room_rate = 1;
        c.room_burst = 1;
    })
    .await;
    let (a, b) = (app.register("dash_a").await, app.register("dash_b").await);
    let chat = app.direct_chat(&a, &b).await;
    let mut events = open_events(&app.channel, &b, &[]).await.unwrap();
    app.send(&a, &chat, "for the dashboard").await;
    events.next_message().await; // a live delivery: its lag is recorded
    expect_code(
        app.try_send(&a, &chat, "", "").await,
        Code::InvalidArgument,
        "content",
    );
    let refused = app
        .create_chat(
            &a,
            CreateChatRequest {
                name: "over the limit".into(),
                member_ids: vec![b.id.clone()],
                is_group: true,
                ..Default::default()
            },
        )
        .await
        .expect_err("a second room in a minute is over ROOM_RATE");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");

    let queried = dashboard_metrics(&dashboards_dir());
    assert!(
        queried.len() >= 10,
        "too few metrics found in the dashboards (is the extraction broken?): {queried:?}"
    );
    // The health gauges are set by a probe of their own: wait (bounded) for
    // them rather than race it. A name that never appears fails at WAIT.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let scrape = crate::ops::scrape(&app).await;
        let missing = missing_metrics(&queried, &scrape);
        if missing.is_empty() {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!(
                "the dashboards query metrics /metrics does not export:\n  {}\n\n/metrics:\n{scrape}",
                missing.join("\n  ")
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

fn dashboards_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/grafana/dashboards")
}

/// A metric one dashboard queries: its name and where.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Queried {
    name: String,
    file: String,
    expr: String,
}

/// Every metric name in every `expr` of every dashboard JSON in `dir`.
fn dashboard_metrics(dir: &Path) -> Vec<Queried> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no dashboard in {}", dir.display());
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{}: not JSON: {e}", file.display()));
        let mut exprs = Vec::new();
        collect_exprs(&json, &mut exprs);
        assert!(!exprs.is_empty(), "{}: no PromQL expr", file.display());
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        for expr in exprs {
            let metrics = metric_names(&expr);
            assert!(
                !metrics.is_empty(),
                "{name}: no metric found in {expr:?} (a query of no metric, or a tokenizer gap)"
            );
            out.extend(metrics.into_iter().map(|m| Queried {
                name: m,
                file: name.clone(),
                expr: expr.clone(),
            }));
        }
    }
    out
}

/// Every string under an `"expr"` key, anywhere in the dashboard (panels,
/// rows' nested panels, targets).
fn collect_exprs(node: &serde_json::Value, out: &mut Vec<String>) {
    match node {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("expr", serde_json::Value::String(expr)) => out.push(expr.clone()),
                    _ => collect_exprs(value, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_exprs(v, out)),
        _ => {}
    }
}

/// The queried metrics `scrape` lacks, one line each. A histogram's
/// `_bucket` / `_sum` / `_count` (a summary's `_sum` / `_count`) maps to its
/// family, which must be declared (`# TYPE`); the exact series must be there
/// too, so `_bucket` of a summary is reported.
fn missing_metrics(queried: &[Queried], scrape: &str) -> Vec<String> {
    let mut families = BTreeSet::new();
    let mut series = BTreeSet::new();
    for line in scrape.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            if let Some(name) = rest.split_whitespace().next() {
                families.insert(name.to_owned());
            }
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            series.insert(line[..end].to_owned());
        }
    }
    let mut missing = BTreeSet::new();
    for q in queried {
        if SYNTHESISED.contains(&q.name.as_str()) {
            continue;
        }
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| q.name.strip_suffix(s))
            .filter(|f| families.contains(*f))
            .unwrap_or(&q.name);
        if !families.contains(family) || !series.contains(&q.name) {
            missing.insert(format!(
                "{} (family {family}) in {}: {}",
                q.name, q.file, q.expr
            ));
        }
    }
    missing.into_iter().collect()
}

/// PromQL keywords that are not metric names.
const KEYWORDS: &[&str] = &[
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "inf",
    "nan",
];
/// Keywords followed by a parenthesised list of label names.
const LABEL_LISTS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// The metric names a PromQL expression selects: identifiers that are not
/// functions or aggregations (followed by `(`), keywords, label names (in
/// `{...}` or after by/without/on/ignoring/group_*), strings, numbers,
/// durations (`[...]`, after `offset`) or Grafana variables (`$__rate_interval`).
fn metric_names(expr: &str) -> Vec<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = Vec::new();
    let mut i = 0;
    let skip_string = |i: &mut usize| {
        let quote = chars[*i];
        *i += 1;
        while *i < chars.len() && chars[*i] != quote {
            if chars[*i] == '\\' && quote != '`' {
                *i += 1;
            }
            *i += 1;
        }
        *i += 1;
    };
    let skip_to = |i: &mut usize, close: char| {
        while *i < chars.len() && chars[*i] != close {
            if matches!(chars[*i], '"' | '\'' | '`') {
                skip_string(i);
            } else {
                *i += 1;
            }
        }
        *i += 1;
    };
    let ident_start = |c: char| c.is_ascii_alphabetic() || c == '_' || c == ':';
    let ident_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut after_offset = false;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if matches!(c, '"' | '\'' | '`') {
            skip_string(&mut i);
        } else if c == '{' {
            skip_to(&mut i, '}');
        } else if c == '[' {
            skip_to(&mut i, ']');
        } else if c == '$' {
            // $var, ${var}, $__rate_interval
            i += 1;
            if i < chars.len() && chars[i] == '{' {
                skip_to(&mut i, '}');
            } else {
                while i < chars.len() && ident_char(chars[i]) {
                    i += 1;
                }
            }
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            // Numbers and durations (5m, 1h30m, 1e-3, 0x1f).
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || matches!(chars[i], '.' | '_'))
            {
                if matches!(chars[i], 'e' | 'E') && matches!(chars.get(i + 1), Some('+' | '-')) {
                    i += 1;
                }
                i += 1;
            }
            after_offset = false;
        } else if ident_start(c) {
            let start = i;
            while i < chars.len() && ident_char(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let mut next = i;
            while next < chars.len() && chars[next].is_whitespace() {
                next += 1;
            }
            let lower = word.to_ascii_lowercase();
            // `sum by (le) (...)`: an aggregation with its modifier first.
            let next_word: String = chars[next..]
                .iter()
                .take_while(|c| ident_char(**c))
                .collect::<String>()
                .to_ascii_lowercase();
            let modified = matches!(next_word.as_str(), "by" | "without");
            if after_offset {
                after_offset = false; // a duration like `offset 1h` is a number; anything else is odd
            } else if LABEL_LISTS.contains(&lower.as_str()) {
                if chars.get(next) == Some(&'(') {
                    i = next + 1;
                    skip_to(&mut i, ')');
                }
            } else if lower == "offset" {
                after_offset = true;
            } else if KEYWORDS.contains(&lower.as_str())
                || chars.get(next) == Some(&'(')
                || modified
            {
                // A keyword, or a function / aggregation name.
            } else if !names.contains(&word) {
                names.push(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

#[test]
fn metric_names_skip_functions_labels_durations_and_variables() {
    assert_eq!(
        metric_names(
            r#"histogram_quantile(0.99, sum by (method, le) (rate(tidings_grpc_call_duration_seconds_bucket{code!="OK", a=~"x}y"}[$__rate_interval])))"#
        ),
        ["tidings_grpc_call_duration_seconds_bucket"]
    );
    assert_eq!(
        metric_names(
            "sum without (instance) (rate(a_total[5m] offset 1h)) / on (job) group_left (x) sum(b_count) > bool 1e-3 or c:recorded:rate5m"
        ),
        ["a_total", "b_count", "c:recorded:rate5m"]
    );
    assert_eq!(
        metric_names(r#"max(tidings_send_batch_size{quantile="0.99"}) by (instance)"#),
        ["tidings_send_batch_size"]
    );
    assert_eq!(metric_names(r#"up{job="tidings"} == 0"#), ["up"]);
}

#[test]
fn a_misspelled_metric_is_reported() {
    let scrape = "\
# TYPE tidings_deliveries_total counter
tidings_deliveries_total 3
# TYPE tidings_delivery_lag_seconds histogram
tidings_delivery_lag_seconds_bucket{le=\"0.5\"} 1
tidings_delivery_lag_seconds_sum 0.1
tidings_delivery_lag_seconds_count 1
# TYPE tidings_send_batch_size summary
tidings_send_batch_size{quantile=\"0.5\"} 1
tidings_send_batch_size_sum 1
tidings_send_batch_size_count 1
";
    let q = |expr: &str| -> Vec<Queried> {
        metric_names(expr)
            .into_iter()
            .map(|name| Queried {
                name,
                file: "t.json".into(),
                expr: expr.into(),
            })
            .collect()
    };
    assert!(missing_metrics(&q("rate(tidings_deliveries_total[1m])"), scrape).is_empty());
    assert!(
        missing_metrics(
            &q("histogram_quantile(0.9, sum by (le) (rate(tidings_delivery_lag_seconds_bucket[1m])))"),
            scrape
        )
        .is_empty()
    );
    assert!(
        missing_metrics(
            &q("rate(tidings_send_batch_size_sum[1m]) / rate(tidings_send_batch_size_count[1m])"),
            scrape
        )
        .is_empty()
    );
    // Misspelled, a histogram suffix on a summary, an unknown family.
    for bad in [
        "rate(tidings_delivered_total[1m])",
        "histogram_quantile(0.5, rate(tidings_send_batch_size_bucket[1m]))",
        "rate(tidings_delivery_lags_seconds_bucket[1m])",
    ] {
        let missing = missing_metrics(&q(bad), scrape);
        assert_eq!(missing.len(), 1, "{bad}: {missing:?}");
    }
}
