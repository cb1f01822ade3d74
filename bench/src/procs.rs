//! What /proc tells about a server: its processes (the one we spawned and
//! every descendant: vsftpd and pure-ftpd fork per client), their memory
//! (RSS and PSS from smaps_rollup) and their CPU time; and the benchmark's
//! own CPU time, to show the load generator is not the bottleneck.

use std::collections::HashMap;
use std::fs;

/// Clock ticks per second of /proc/*/stat times.
fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// The fields of /proc/PID/stat after the command name, which may contain
/// spaces and parentheses: everything after the last ')'.
fn stat_fields(pid: u32) -> Option<Vec<u64>> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    // Field 3 (state) is a letter: map it to 0 so indices stay those of proc(5) minus 3.
    Some(rest.split_whitespace().map(|f| f.parse::<u64>().unwrap_or(0)).collect())
}

/// When a process started (clock ticks since boot), to tell it from a later
/// process that reuses its pid.
pub fn start_time(pid: u32) -> Option<u64> {
    // proc(5) field 22: index 19 after the name.
    stat_fields(pid)?.get(19).copied()
}

/// Parent pid of every process on the system.
fn parents() -> HashMap<u32, u32> {
    let mut map = HashMap::new();
    let Ok(dir) = fs::read_dir("/proc") else {
        return map;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if let Some(f) = stat_fields(pid) {
            // proc(5): field 4 is ppid; after the name, index 1.
            if let Some(&ppid) = f.get(1) {
                map.insert(pid, ppid as u32);
            }
        }
    }
    map
}

/// `root` and all its live descendants.
pub fn tree(root: u32) -> Vec<u32> {
    let parents = parents();
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for (&pid, &ppid) in &parents {
        children.entry(ppid).or_default().push(pid);
    }
    let mut out = Vec::new();
    if !parents.contains_key(&root) {
        return out;
    }
    let mut stack = vec![root];
    while let Some(p) = stack.pop() {
        out.push(p);
        if let Some(c) = children.get(&p) {
            stack.extend(c.iter().copied());
        }
    }
    out
}

/// Memory of a set of processes, summed, in kB.
#[derive(Debug, Clone, Copy, Default)]
pub struct Mem {
    pub rss_kb: u64,
    pub pss_kb: u64,
    pub processes: usize,
}

/// RSS and PSS summed over `root` and its descendants.
pub fn tree_memory(root: u32) -> Mem {
    let mut m = Mem::default();
    for pid in tree(root) {
        let Ok(text) = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")) else {
            continue; // exited meanwhile
        };
        let mut counted = false;
        for line in text.lines() {
            let mut parts = line.split_whitespace();
            let (Some(key), Some(val)) = (parts.next(), parts.next()) else { continue };
            let Ok(val) = val.parse::<u64>() else { continue };
            match key {
                "Rss:" => {
                    m.rss_kb += val;
                    counted = true;
                }
                "Pss:" => m.pss_kb += val,
                _ => {}
            }
        }
        if counted {
            m.processes += 1;
        }
    }
    m
}

/// CPU seconds (user + system) of `root` and its live descendants,
/// including what their already reaped children spent.
pub fn tree_cpu_seconds(root: u32) -> f64 {
    let hz = ticks_per_second();
    tree(root)
        .into_iter()
        .filter_map(stat_fields)
        // proc(5) fields 14-17 (utime, stime, cutime, cstime): indices 11-14 here.
        .map(|f| f.iter().skip(11).take(4).sum::<u64>() as f64 / hz)
        .sum()
}

/// CPU seconds this process has used so far (all threads).
pub fn self_cpu_seconds() -> f64 {
    let hz = ticks_per_second();
    stat_fields(std::process::id()).map(|f| f.iter().skip(11).take(2).sum::<u64>() as f64 / hz).unwrap_or(0.0)
}

/// Raises the soft limit of open files to the hard limit; returns the new
/// soft limit. Children spawned afterwards inherit it.
pub fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `lim` is a valid rlimit for getrlimit/setrlimit to read and write.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let want = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                lim = want;
            }
        }
    }
    lim.rlim_cur
}

/// CPU time measured around a piece of work: the client's (this process)
/// and, if given, a server's process tree.
pub struct CpuMeter {
    start: std::time::Instant,
    client0: f64,
    server: Option<(u32, f64)>,
}

/// What a [`CpuMeter`] measured.
#[derive(Debug, Clone, Copy)]
pub struct CpuUse {
    pub wall: f64,
    pub client_cpu: f64,
    pub server_cpu: f64,
}

impl CpuUse {
    /// The client's CPU as a percentage of one core over the wall time.
    pub fn client_share(&self) -> f64 {
        if self.wall > 0.0 {
            100.0 * self.client_cpu / self.wall
        } else {
            0.0
        }
    }
}

impl CpuMeter {
    pub fn start(server_pid: Option<u32>) -> CpuMeter {
        CpuMeter {
            start: std::time::Instant::now(),
            client0: self_cpu_seconds(),
            server: server_pid.map(|p| (p, tree_cpu_seconds(p))),
        }
    }

    pub fn stop(&self) -> CpuUse {
        let wall = self.start.elapsed().as_secs_f64();
        CpuUse {
            wall,
            client_cpu: self_cpu_seconds() - self.client0,
            server_cpu: self.server.map_or(0.0, |(p, c0)| (tree_cpu_seconds(p) - c0).max(0.0)),
        }
    }
}
