//! Measuring: HDR histograms shared by many tasks, /proc sampling of the
//! server (CPU, RSS), and the results table.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Highest latency a histogram holds, in microseconds (larger values are
/// clamped to it, which only happens when something is badly wrong).
const MAX_MICROS: u64 = 120_000_000;

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("valid histogram bounds")
}

/// A latency histogram (microseconds) written by many tasks at once: the
/// writers are spread over shards so they rarely wait for each other.
pub struct Recorder {
    shards: Vec<Mutex<Shard>>,
}

struct Shard {
    histogram: Histogram<u64>,
    /// Latest arrival recorded (nanoseconds on the tool's clock).
    last_ns: u64,
}

impl Recorder {
    pub fn new(shards: usize) -> Arc<Recorder> {
        Arc::new(Recorder {
            shards: (0..shards.max(1))
                .map(|_| {
                    Mutex::new(Shard {
                        histogram: histogram(),
                        last_ns: 0,
                    })
                })
                .collect(),
        })
    }

    pub fn record(&self, shard: usize, latency: Duration) {
        self.record_at(shard, latency, 0);
    }

    /// Records a latency and the moment (tool clock, ns) it was observed.
    pub fn record_at(&self, shard: usize, latency: Duration, at_ns: u64) {
        let micros = (latency.as_micros() as u64).clamp(1, MAX_MICROS);
        let shard = &self.shards[shard % self.shards.len()];
        let mut s = shard.lock().unwrap_or_else(|p| p.into_inner());
        s.histogram.saturating_record(micros);
        s.last_ns = s.last_ns.max(at_ns);
    }

    pub fn merged(&self) -> Histogram<u64> {
        let mut all = histogram();
        for shard in &self.shards {
            let s = shard.lock().unwrap_or_else(|p| p.into_inner());
            all.add(&s.histogram).expect("same bounds");
        }
        all
    }

    pub fn count(&self) -> u64 {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).histogram.len())
            .sum()
    }

    /// The latest `at_ns` recorded.
    pub fn last_ns(&self) -> u64 {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).last_ns)
            .max()
            .unwrap_or(0)
    }

    pub fn summary(&self) -> Summary {
        Summary::of(&self.merged())
    }
}

/// Percentiles of a histogram, in milliseconds.
#[derive(Clone, Copy, Debug, Default)]
pub struct Summary {
    pub count: u64,
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Summary {
    pub fn of(h: &Histogram<u64>) -> Summary {
        if h.is_empty() {
            return Summary::default();
        }
        let ms = |v: u64| v as f64 / 1000.0;
        Summary {
            count: h.len(),
            p50: ms(h.value_at_quantile(0.50)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }
}

/// One process's CPU time and memory, from /proc.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcStat {
    /// utime + stime, in clock ticks.
    pub ticks: u64,
    pub rss_kib: u64,
}

#[allow(unsafe_code)] // one libc call, see SAFETY
fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions; it only reads a constant.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// Reads /proc/<pid>/stat (utime, stime) and /proc/<pid>/status (VmRSS).
/// `None` for "self".
pub fn read_proc(pid: Option<u32>) -> Option<ProcStat> {
    let dir = match pid {
        Some(pid) => format!("/proc/{pid}"),
        None => "/proc/self".to_owned(),
    };
    let stat = std::fs::read_to_string(format!("{dir}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces:
    // count fields after the last ')'. utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let status = std::fs::read_to_string(format!("{dir}/status")).ok()?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Some(ProcStat {
        ticks: utime + stime,
        rss_kib,
    })
}

/// Busy and total jiffies of the whole machine (first line of /proc/stat).
fn machine_jiffies() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    // idle + iowait are not busy.
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    Some((total.saturating_sub(idle), total))
}

/// The 1-minute load average, as a health note for every run.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

/// CPU and memory over a measured window: the server's (when its pid is
/// known), this tool's own, and the machine's.
pub struct Usage {
    pub server_cpu_pct: Option<f64>,
    pub server_rss_peak_kib: Option<u64>,
    pub server_rss_end_kib: Option<u64>,
    pub tool_cpu_pct: f64,
    pub machine_busy_pct: Option<f64>,
}

/// Samples the server's RSS every 200 ms (for the peak) and reads CPU
/// counters at the start and end of a window.
pub struct Sampler {
    pid: Option<u32>,
    started: Instant,
    server0: Option<ProcStat>,
    tool0: Option<ProcStat>,
    machine0: Option<(u64, u64)>,
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Sampler {
    pub fn start(pid: Option<u32>) -> Sampler {
        let peak = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        if let Some(pid) = pid {
            let (peak, stop) = (peak.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(s) = read_proc(Some(pid)) {
                        peak.fetch_max(s.rss_kib, Ordering::Relaxed);
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            });
        }
        Sampler {
            pid,
            started: Instant::now(),
            server0: pid.and_then(|p| read_proc(Some(p))),
            tool0: read_proc(None),
            machine0: machine_jiffies(),
            peak,
            stop,
        }
    }

    pub fn finish(self) -> Usage {
        self.stop.store(true, Ordering::Relaxed);
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let hz = clock_ticks_per_second();
        let pct = |a: Option<ProcStat>, b: Option<ProcStat>| match (a, b) {
            (Some(a), Some(b)) => {
                Some((b.ticks.saturating_sub(a.ticks)) as f64 / hz / secs * 100.0)
            }
            _ => None,
        };
        let server1 = self.pid.and_then(|p| read_proc(Some(p)));
        let machine_busy_pct = match (self.machine0, machine_jiffies()) {
            (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => {
                Some((b1 - b0) as f64 / (t1 - t0) as f64 * 100.0)
            }
            _ => None,
        };
        let peak = self.peak.load(Ordering::Relaxed);
        Usage {
            server_cpu_pct: pct(self.server0, server1),
            server_rss_peak_kib: server1.map(|s| s.rss_kib.max(peak)),
            server_rss_end_kib: server1.map(|s| s.rss_kib),
            tool_cpu_pct: pct(self.tool0, read_proc(None)).unwrap_or(0.0),
            machine_busy_pct,
        }
    }
}

/// One line of the results table.
#[derive(Clone, Debug)]
pub struct Row {
    pub figure: String,
    pub value: f64,
    pub unit: &'static str,
    /// value divided by a reference ceiling, and that ceiling's name.
    pub ratio: Option<(f64, &'static str)>,
}

/// The figures of one scenario run.
pub struct Report {
    pub scenario: String,
    pub label: String,
    pub rows: Vec<Row>,
    pub notes: Vec<String>,
}

impl Report {
    pub fn new(scenario: &str, label: &str) -> Report {
        Report {
            scenario: scenario.to_owned(),
            label: label.to_owned(),
            rows: Vec::new(),
            notes: Vec::new(),
        }
    }

    pub fn add(&mut self, figure: impl Into<String>, value: f64, unit: &'static str) {
        self.rows.push(Row {
            figure: figure.into(),
            value,
            unit,
            ratio: None,
        });
    }

    /// Adds a figure with its ratio to a reference ceiling, when known.
    pub fn add_vs(
        &mut self,
        figure: impl Into<String>,
        value: f64,
        unit: &'static str,
        reference: Option<f64>,
        reference_name: &'static str,
    ) {
        self.rows.push(Row {
            figure: figure.into(),
            value,
            unit,
            ratio: reference
                .filter(|r| *r > 0.0)
                .map(|r| (value / r, reference_name)),
        });
    }

    pub fn latency(&mut self, what: &str, s: &Summary) {
        self.add(format!("{what} p50"), s.p50, "ms");
        self.add(format!("{what} p99"), s.p99, "ms");
        self.add(format!("{what} p999"), s.p999, "ms");
        self.add(format!("{what} max"), s.max, "ms");
        self.add(format!("{what} samples"), s.count as f64, "count");
    }

    pub fn usage(&mut self, u: &Usage) {
        if let Some(c) = u.server_cpu_pct {
            self.add("server CPU (100% = one core)", c, "%");
        }
        if let Some(r) = u.server_rss_peak_kib {
            self.add("server RSS peak", r as f64 / 1024.0, "MiB");
        }
        if let Some(r) = u.server_rss_end_kib {
            self.add("server RSS at end", r as f64 / 1024.0, "MiB");
        }
        self.add("load tool CPU (100% = one core)", u.tool_cpu_pct, "%");
        if let Some(m) = u.machine_busy_pct {
            self.add("machine busy (all cores)", m, "%");
        }
    }

    pub fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    /// The table, as printed at the end of a run.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let label = if self.label.is_empty() {
            String::new()
        } else {
            format!(" [{}]", self.label)
        };
        let _ = writeln!(out, "\n== {}{label} ==", self.scenario);
        let _ = writeln!(
            out,
            "{:<10} {:<44} {:>14} {:<6} reference",
            "scenario", "figure", "value", "unit"
        );
        for r in &self.rows {
            let ratio = match r.ratio {
                Some((x, name)) => format!("{x:.2}x {name}"),
                None => String::new(),
            };
            let _ = writeln!(
                out,
                "{:<10} {:<44} {:>14} {:<6} {ratio}",
                self.scenario,
                r.figure,
                format_value(r.value),
                r.unit
            );
        }
        for n in &self.notes {
            let _ = writeln!(out, "note: {n}");
        }
        out
    }

    /// Appends the rows as tab-separated lines:
    /// label, scenario, figure, value, unit, ratio, reference.
    pub fn append_tsv(&self, path: &Path) -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        for r in &self.rows {
            let (ratio, name) = match r.ratio {
                Some((x, name)) => (format!("{x:.3}"), name),
                None => (String::new(), ""),
            };
            writeln!(
                f,
                "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                self.label,
                self.scenario,
                r.figure,
                format_value(r.value),
                r.unit,
                ratio,
                name
            )?;
        }
        for n in &self.notes {
            writeln!(f, "{}\t{}\tnote\t\t\t\t{}", self.label, self.scenario, n)?;
        }
        Ok(())
    }
}

fn format_value(v: f64) -> String {
    if v == v.trunc() && v.abs() < 1e15 {
        format!("{v:.0}")
    } else if v.abs() >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorder_merges_shards() {
        let r = Recorder::new(4);
        for i in 0..1000u64 {
            r.record(i as usize, Duration::from_micros(i + 1));
        }
        let s = r.summary();
        assert_eq!(s.count, 1000);
        assert!((s.p50 - 0.5).abs() < 0.01, "{s:?}");
        assert!(s.max >= 0.999);
    }

    #[test]
    fn reads_own_proc_entry() {
        let s = read_proc(None).expect("/proc/self");
        assert!(s.rss_kib > 0);
    }
}
