//! Where the processes of a measurement run: the CPUs split between the system under test and
//! the load generator, a CPU quota for the system (a cgroup, as a Kubernetes CPU limit sets
//! it), and the memory a process peaked at.

use std::path::{Path, PathBuf};

/// The CPUs this process may use, split in two: the first half for the system under test,
/// the rest for the load generator. `taskset` lists (`0`, `1-3`, `0,2`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuSplit {
    pub system: String,
    pub generator: String,
}

impl CpuSplit {
    /// Halves the CPUs this process is allowed (`Cpus_allowed_list` in `/proc/self/status`);
    /// `None` with fewer than two, or where Linux does not say.
    pub fn halves() -> Option<Self> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let list = status
            .lines()
            .find_map(|line| line.strip_prefix("Cpus_allowed_list:"))?;
        Self::of(&cpus(list.trim())?)
    }

    fn of(cpus: &[usize]) -> Option<Self> {
        if cpus.len() < 2 {
            return None;
        }
        let (system, generator) = cpus.split_at(cpus.len() / 2);
        let join = |cpus: &[usize]| {
            cpus.iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        Some(Self {
            system: join(system),
            generator: join(generator),
        })
    }

    /// Moves every thread of this process (the test, its proxies) onto the generator's CPUs.
    pub(super) fn pin_this_process(&self) {
        let status = std::process::Command::new("taskset")
            .args(["--all-tasks", "--pid", "--cpu-list", &self.generator])
            .arg(std::process::id().to_string())
            .stdout(std::process::Stdio::null())
            .status()
            .expect("taskset runs (util-linux)");
        assert!(
            status.success(),
            "taskset pinned the test process: {status}"
        );
    }
}

/// A CPU budget for a group of processes: a cgroup of its own with a CFS quota (v1's
/// `cpu.cfs_quota_us` or v2's `cpu.max`), removed when dropped.
#[derive(Debug)]
pub struct CpuQuota {
    dir: PathBuf,
}

impl CpuQuota {
    /// A quota of `cores` CPUs (0.5: half of one) per 20 ms, or `None` where no writable
    /// cgroup CPU controller is mounted (not root, no delegation).
    pub fn new(cores: f64) -> Option<Self> {
        let mounts = std::fs::read_to_string("/proc/mounts").ok()?;
        let (root, v2) = mounts.lines().find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (path, kind, options) = (fields.get(1)?, fields.get(2)?, fields.get(3)?);
            let path = Path::new(path);
            match *kind {
                "cgroup" if options.split(',').any(|option| option == "cpu") => {
                    Some((path.to_owned(), false))
                }
                "cgroup2"
                    if std::fs::read_to_string(path.join("cgroup.subtree_control")).is_ok_and(
                        |controllers| controllers.split_whitespace().any(|c| c == "cpu"),
                    ) =>
                {
                    Some((path.to_owned(), true))
                }
                _ => None,
            }
        })?;
        let dir = root.join(format!("stormproof-e2e-{}", std::process::id()));
        std::fs::create_dir_all(&dir).ok()?;
        let period_us = 20_000u64;
        let quota_us = (cores * period_us as f64) as u64;
        let written = if v2 {
            std::fs::write(dir.join("cpu.max"), format!("{quota_us} {period_us}"))
        } else {
            std::fs::write(dir.join("cpu.cfs_period_us"), period_us.to_string())
                .and_then(|()| std::fs::write(dir.join("cpu.cfs_quota_us"), quota_us.to_string()))
        };
        let quota = Self { dir };
        written.ok().map(|()| quota)
    }

    /// Moves process `pid`, every thread of it, into the group.
    pub(super) fn add(&self, pid: u32) -> std::io::Result<()> {
        std::fs::write(self.dir.join("cgroup.procs"), pid.to_string())
    }
}

impl Drop for CpuQuota {
    fn drop(&mut self) {
        // Only an empty group can go: by now the processes have been killed, or they leave
        // an empty directory behind for the next boot.
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// A CPU list (`0-3,8`) as CPU numbers; `None` if it does not parse.
fn cpus(list: &str) -> Option<Vec<usize>> {
    let mut cpus = Vec::new();
    for part in list.split(',') {
        match part.split_once('-') {
            Some((first, last)) => cpus.extend(first.parse::<usize>().ok()?..=last.parse().ok()?),
            None => cpus.push(part.parse().ok()?),
        }
    }
    Some(cpus)
}

/// Peak resident memory of process `pid` so far, in KiB (`VmHWM`), if Linux says.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cpu_list_is_split_into_halves() {
        assert_eq!(cpus("0-3,8"), Some(vec![0, 1, 2, 3, 8]));
        assert_eq!(cpus("0-x"), None);
        assert_eq!(CpuSplit::of(&[0]), None);
        let split = |system: &str, generator: &str| {
            Some(CpuSplit {
                system: system.to_owned(),
                generator: generator.to_owned(),
            })
        };
        assert_eq!(CpuSplit::of(&[0, 1]), split("0", "1"));
        assert_eq!(CpuSplit::of(&[0, 1, 2, 3, 8]), split("0,1", "2,3,8"));
    }
}
