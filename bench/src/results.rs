//! What the benchmark measured, per metric, server and repetition; and the
//! report made of it: a Markdown table of medians with the ratios
//! ferroftpd/peer, the targets met or missed, and an SVG plot of memory
//! against clients, drawn by hand.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    Higher,
    Lower,
    Neither,
}

#[derive(Debug, Clone)]
pub struct Metric {
    pub key: String,
    pub section: &'static str,
    pub label: String,
    pub unit: &'static str,
    pub better: Better,
}

impl Metric {
    pub fn new(
        section: &'static str,
        key: impl Into<String>,
        label: impl Into<String>,
        unit: &'static str,
        better: Better,
    ) -> Metric {
        Metric { key: key.into(), section, label: label.into(), unit, better }
    }
}

/// One point of the memory curve: clients actually held, RSS and PSS in kB.
#[derive(Debug, Clone, Copy)]
pub struct Point {
    pub clients: f64,
    pub rss_kb: f64,
    pub pss_kb: f64,
    pub processes: f64,
}

#[derive(Debug, Default)]
pub struct Results {
    pub metrics: Vec<Metric>,
    pub values: HashMap<(String, String), Vec<f64>>,
    pub client: HashMap<(String, String), Vec<f64>>,
    /// server → ramp target → points (one per repetition).
    pub curve: BTreeMap<String, BTreeMap<usize, Vec<Point>>>,
    pub notes: Vec<String>,
    /// (server, what failed).
    pub errors: Vec<(String, String)>,
    /// server → (fewest, most clients held at the top of the ramp, first reason).
    pub shortfalls: BTreeMap<String, (usize, usize, String)>,
}

pub const FERRO: &str = "ferroftpd";
pub const RAW: &str = "raw TCP";

pub fn median(v: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    Some(if v.len() % 2 == 1 { v[m] } else { (v[m - 1] + v[m]) / 2.0 })
}

fn num(x: f64) -> String {
    let a = x.abs();
    if a >= 1000.0 {
        // Thousands separated by a thin space for readability.
        let s = format!("{:.0}", x);
        let (sign, digits) = s.strip_prefix('-').map_or(("", s.as_str()), |d| ("-", d));
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        format!("{sign}{out}")
    } else if a >= 100.0 || x.fract() == 0.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

impl Results {
    fn register(&mut self, m: &Metric) {
        if !self.metrics.iter().any(|x| x.key == m.key) {
            self.metrics.push(m.clone());
        }
    }

    pub fn record(&mut self, m: &Metric, server: &str, value: f64) {
        self.register(m);
        self.values.entry((m.key.clone(), server.to_string())).or_default().push(value);
    }

    pub fn record_client(&mut self, m: &Metric, server: &str, share_pct: f64) {
        self.register(m);
        self.client.entry((m.key.clone(), server.to_string())).or_default().push(share_pct);
    }

    pub fn point(&mut self, server: &str, target: usize, p: Point) {
        self.curve.entry(server.to_string()).or_default().entry(target).or_default().push(p);
    }

    /// Notes that a server held only `held` clients of the ramp's top.
    pub fn shortfall(&mut self, server: &str, held: usize, why: String) {
        let e = self.shortfalls.entry(server.to_string()).or_insert((held, held, why));
        e.0 = e.0.min(held);
        e.1 = e.1.max(held);
    }

    /// Every sample, one line each: section, metric, server, repetition, value, client CPU %.
    pub fn csv(&self) -> String {
        let mut out = String::from("section,metric,unit,server,sample,value,client_cpu_pct\n");
        for m in &self.metrics {
            let mut servers: Vec<&String> = self
                .values
                .keys()
                .chain(self.client.keys())
                .filter(|(k, _)| *k == m.key)
                .map(|(_, s)| s)
                .collect();
            servers.sort();
            servers.dedup();
            for s in servers {
                let vals = self.values.get(&(m.key.clone(), s.clone()));
                let cpu = self.client.get(&(m.key.clone(), s.clone()));
                let n = vals.map_or(0, Vec::len).max(cpu.map_or(0, Vec::len));
                for i in 0..n {
                    let v = vals.and_then(|v| v.get(i)).map_or(String::new(), |x| format!("{x}"));
                    let c = cpu.and_then(|v| v.get(i)).map_or(String::new(), |x| format!("{x:.1}"));
                    let _ = writeln!(out, "{},{},{},{s},{},{v},{c}", m.section, m.key, m.unit, i + 1);
                }
            }
        }
        out
    }

    pub fn error(&mut self, server: &str, what: String) {
        eprintln!("bench: {server}: {what}");
        self.errors.push((server.to_string(), what));
    }

    pub fn med(&self, key: &str, server: &str) -> Option<f64> {
        self.values.get(&(key.to_string(), server.to_string())).and_then(|v| median(v))
    }

    fn client_med(&self, key: &str, server: &str) -> Option<f64> {
        self.client.get(&(key.to_string(), server.to_string())).and_then(|v| median(v))
    }

    /// The Markdown report.
    pub fn markdown(&self, servers: &[String], header: &str, targets: &[Target]) -> String {
        let peers: Vec<&String> =
            servers.iter().filter(|s| s.as_str() != FERRO && s.as_str() != RAW).collect();
        let mut md = String::new();
        md.push_str(header);
        let mut sections: Vec<&'static str> = Vec::new();
        for m in &self.metrics {
            if !sections.contains(&m.section) {
                sections.push(m.section);
            }
        }
        for section in sections {
            let ms: Vec<&Metric> = self.metrics.iter().filter(|m| m.section == section).collect();
            let cols: Vec<&String> =
                servers.iter().filter(|s| ms.iter().any(|m| self.med(&m.key, s).is_some())).collect();
            if cols.is_empty() {
                continue;
            }
            let _ = writeln!(md, "\n## {section}\n");
            let mut head = String::from("| metric | unit | better |");
            let mut rule = String::from("|---|---|:-:|");
            for c in &cols {
                let _ = write!(head, " {c} |");
                rule.push_str("--:|");
            }
            for p in &peers {
                if cols.contains(p) {
                    let _ = write!(head, " {FERRO}/{p} |");
                    rule.push_str("--:|");
                }
            }
            let _ = writeln!(md, "{head}\n{rule}");
            for m in ms.iter().filter(|m| cols.iter().any(|c| self.med(&m.key, c).is_some())) {
                let better = match m.better {
                    Better::Higher => "↑",
                    Better::Lower => "↓",
                    Better::Neither => "",
                };
                let mut row = format!("| {} | {} | {better} |", m.label, m.unit);
                for c in &cols {
                    let cell = self.med(&m.key, c).map_or("–".to_string(), num);
                    let _ = write!(row, " {cell} |");
                }
                for p in &peers {
                    if cols.contains(p) {
                        let cell = match (self.med(&m.key, FERRO), self.med(&m.key, p)) {
                            (Some(f), Some(q)) if q != 0.0 => format!("{:.2}", f / q),
                            _ => "–".to_string(),
                        };
                        let _ = write!(row, " {cell} |");
                    }
                }
                let _ = writeln!(md, "{row}");
            }
            // The load generator's CPU over the same measurements.
            let with_client: Vec<&&Metric> =
                ms.iter().filter(|m| cols.iter().any(|c| self.client_med(&m.key, c).is_some())).collect();
            if !with_client.is_empty() {
                let _ = writeln!(
                    md,
                    "\nLoad generator's CPU, % of one core (median), during the same measurements:\n"
                );
                let mut head = String::from("| measurement |");
                let mut rule = String::from("|---|");
                for c in &cols {
                    let _ = write!(head, " {c} |");
                    rule.push_str("--:|");
                }
                let _ = writeln!(md, "{head}\n{rule}");
                for m in with_client {
                    let mut row = format!("| {} |", m.label);
                    for c in &cols {
                        let cell =
                            self.client_med(&m.key, c).map_or("–".to_string(), |x| format!("{x:.0}%"));
                        let _ = write!(row, " {cell} |");
                    }
                    let _ = writeln!(md, "{row}");
                }
            }
        }
        if !targets.is_empty() {
            let _ = writeln!(md, "\n## Targets (ferroftpd)\n");
            let _ = writeln!(md, "| target | ferroftpd | reference | |\n|---|--:|--:|:-:|");
            for t in targets {
                let verdict = match t.met {
                    Some(true) => "met",
                    Some(false) => "**missed**",
                    None => "not measured",
                };
                let _ = writeln!(md, "| {} | {} | {} | {verdict} |", t.what, t.value, t.reference);
            }
        }
        if !self.notes.is_empty() || !self.shortfalls.is_empty() {
            let _ = writeln!(md, "\n## Notes\n");
            for (s, (lo, hi, why)) in &self.shortfalls {
                let held = if lo == hi { format!("{lo}") } else { format!("{lo}–{hi}") };
                let _ = writeln!(
                    md,
                    "- {s} held only {held} logged-in idle clients at the top of the memory ramp (the next login \
                     got: {}); its memory per client there is over the clients it held.",
                    why.replace('\n', " ")
                );
            }
            for n in &self.notes {
                let _ = writeln!(md, "- {n}");
            }
        }
        if !self.errors.is_empty() {
            let _ = writeln!(md, "\n## Errors\n");
            for (s, e) in &self.errors {
                let _ = writeln!(md, "- {s}: {}", e.replace('\n', " "));
            }
        }
        md
    }

    /// Memory (PSS solid, RSS dashed, MiB, log scale) against clients.
    pub fn svg(&self, servers: &[String]) -> String {
        let (w, h) = (760.0_f64, 460.0_f64);
        let (left, right, top, bottom) = (80.0, 170.0, 40.0, 60.0);
        let colors = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"];
        let targets: Vec<usize> = {
            let mut t: Vec<usize> = self.curve.values().flat_map(|m| m.keys().copied()).collect();
            t.sort_unstable();
            t.dedup();
            t
        };
        type Pts = Vec<(usize, f64, f64, f64, f64)>;
        let mut lines: Vec<(String, &str, Pts)> = Vec::new();
        for (i, s) in servers.iter().enumerate() {
            let Some(c) = self.curve.get(s) else { continue };
            let pts: Pts = c
                .iter()
                .filter_map(|(&t, ps)| {
                    let pss = median(&ps.iter().map(|p| p.pss_kb / 1024.0).collect::<Vec<_>>())?;
                    let rss = median(&ps.iter().map(|p| p.rss_kb / 1024.0).collect::<Vec<_>>())?;
                    let held = median(&ps.iter().map(|p| p.clients).collect::<Vec<_>>())?;
                    let procs = median(&ps.iter().map(|p| p.processes).collect::<Vec<_>>())?;
                    Some((t, pss, rss, held, procs))
                })
                .collect();
            lines.push((s.clone(), colors[i % colors.len()], pts));
        }
        let all: Vec<f64> = lines
            .iter()
            .flat_map(|(_, _, p)| p.iter().flat_map(|&(_, a, b, _, _)| [a, b]))
            .filter(|v| *v > 0.0)
            .collect();
        if all.is_empty() {
            return format!(
                "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"60\"><text x=\"10\" y=\"30\" \
                 font-family=\"sans-serif\">No memory measured in this run.</text></svg>\n"
            );
        }
        let lo = all.iter().copied().fold(f64::INFINITY, f64::min).max(0.01);
        let hi = all.iter().copied().fold(0.0, f64::max).max(lo * 10.0);
        // At most 12 decades, whatever the data.
        let (y0, y1) = (lo.log10().floor(), hi.log10().ceil().min(lo.log10().floor() + 12.0));
        let pw = w - left - right;
        let ph = h - top - bottom;
        let xpos = |t: usize| -> f64 {
            let i = targets.iter().position(|&x| x == t).unwrap_or(0) as f64;
            let n = (targets.len().max(2) - 1) as f64;
            left + pw * i / n
        };
        let ypos = |v: f64| -> f64 {
            let l = v.max(1e-6).log10();
            top + ph * (1.0 - (l - y0) / (y1 - y0).max(1e-9))
        };
        let mut s = String::new();
        let _ = writeln!(
            s,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" \
             font-family=\"sans-serif\" font-size=\"12\">"
        );
        let _ = writeln!(s, "<rect width=\"{w}\" height=\"{h}\" fill=\"white\"/>");
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">Server memory against logged-in idle \
             clients (PSS solid, RSS dashed; all processes)</text>",
            w / 2.0
        );
        // Horizontal grid: one line per decade.
        let mut d = y0;
        while d <= y1 + 1e-9 {
            let y = ypos(10f64.powf(d));
            let _ = writeln!(
                s,
                "<line x1=\"{left}\" y1=\"{y:.1}\" x2=\"{}\" y2=\"{y:.1}\" stroke=\"#ddd\"/>\
                 <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                left + pw,
                left - 6.0,
                y + 4.0,
                num(10f64.powf(d))
            );
            d += 1.0;
        }
        for &t in &targets {
            let x = xpos(t);
            let _ = writeln!(
                s,
                "<line x1=\"{x:.1}\" y1=\"{top}\" x2=\"{x:.1}\" y2=\"{}\" stroke=\"#eee\"/>\
                 <text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                top + ph,
                top + ph + 18.0,
                num(t as f64)
            );
        }
        let _ = writeln!(
            s,
            "<rect x=\"{left}\" y=\"{top}\" width=\"{pw}\" height=\"{ph}\" fill=\"none\" stroke=\"#333\"/>\
             <text x=\"{}\" y=\"{}\" text-anchor=\"middle\">logged-in idle clients</text>\
             <text x=\"18\" y=\"{}\" text-anchor=\"middle\" transform=\"rotate(-90 18 {})\">MiB (log scale)</text>",
            left + pw / 2.0,
            h - 16.0,
            top + ph / 2.0,
            top + ph / 2.0
        );
        for (i, (name, color, pts)) in lines.iter().enumerate() {
            for (dash, which) in [("", 1usize), (" stroke-dasharray=\"5,4\"", 2)] {
                let path: Vec<String> = pts
                    .iter()
                    .map(|&(t, pss, rss, _, _)| {
                        let v = if which == 1 { pss } else { rss };
                        format!("{:.1},{:.1}", xpos(t), ypos(v))
                    })
                    .collect();
                let _ = writeln!(
                    s,
                    "<polyline points=\"{}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\"{dash}/>",
                    path.join(" ")
                );
                if which == 1 {
                    for &(t, pss, rss, held, procs) in pts {
                        let _ = writeln!(
                            s,
                            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3.5\" fill=\"{color}\"><title>{name}: {} clients \
                             held, {} processes, PSS {} MiB, RSS {} MiB</title></circle>",
                            xpos(t),
                            ypos(pss),
                            held,
                            procs,
                            num(pss),
                            num(rss)
                        );
                    }
                }
            }
            let ly = top + 10.0 + 22.0 * i as f64;
            let lx = left + pw + 16.0;
            let _ = writeln!(
                s,
                "<line x1=\"{lx}\" y1=\"{ly}\" x2=\"{}\" y2=\"{ly}\" stroke=\"{color}\" stroke-width=\"2\"/>\
                 <text x=\"{}\" y=\"{}\">{name}</text>",
                lx + 24.0,
                lx + 30.0,
                ly + 4.0
            );
        }
        s.push_str("</svg>\n");
        s
    }
}

/// One of the targets and whether ferroftpd meets it.
pub struct Target {
    pub what: String,
    pub value: String,
    pub reference: String,
    pub met: Option<bool>,
}
