//! The cluster directory on disk: who owns it, whether a server already holds it, where the
//! socket goes and the server log.

use std::fs;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::{Gid, Pid, Uid, User};
use tracing::info;

use super::PORT;

/// `sun_path` holds 108 bytes on Linux; stay well below so PostgreSQL never truncates the path.
const MAX_SOCKET_PATH_BYTES: usize = 100;

/// How long to wait for a server that still holds this data directory (say, one whose owner was
/// just killed and which is now shutting down on its parent-death signal) before giving up.
const PREVIOUS_SERVER_GRACE: Duration = Duration::from_secs(10);

const LOG_TAIL_LINES: usize = 20;

/// The system account the server runs as when this process runs as root.
pub(super) struct ServerAccount {
    pub(super) name: String,
    pub(super) uid: Uid,
    pub(super) gid: Gid,
}

/// PostgreSQL refuses to run as root, so as root the server runs as the `postgres` system user;
/// otherwise (`None`) as this process's own user.
pub(super) fn server_account() -> anyhow::Result<Option<ServerAccount>> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    let user = User::from_name("postgres")
        .context("looking up the `postgres` system user")?
        .ok_or_else(|| {
            anyhow!(
                "PostgreSQL refuses to run as root and this process runs as root, but there is no \
                 `postgres` system user to run the embedded server as: create one (e.g. \
                 `useradd --system postgres`) or set DATABASE_URL to use an existing server"
            )
        })?;
    Ok(Some(ServerAccount {
        name: user.name,
        uid: user.uid,
        gid: user.gid,
    }))
}

/// Creates the cluster directory (mode 0700, as PostgreSQL demands), hands it to the server account
/// and returns its canonical path.
pub(super) fn prepare_cluster_dir(
    dir: &Path,
    account: Option<&ServerAccount>,
) -> anyhow::Result<PathBuf> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let dir = fs::canonicalize(dir).with_context(|| format!("resolving {}", dir.display()))?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
        .with_context(|| format!("setting mode 0700 on {}", dir.display()))?;
    if let Some(account) = account {
        chown_tree(&dir, account)?;
    }
    Ok(dir)
}

/// `chown -R` without following symlinks; entries that already belong to the account are skipped,
/// so a restart on an existing cluster touches nothing.
fn chown_tree(path: &Path, account: &ServerAccount) -> anyhow::Result<()> {
    let meta = fs::symlink_metadata(path).with_context(|| format!("reading {}", path.display()))?;
    let (uid, gid) = (account.uid.as_raw(), account.gid.as_raw());
    if meta.uid() != uid || meta.gid() != gid {
        std::os::unix::fs::lchown(path, Some(uid), Some(gid))
            .with_context(|| format!("giving {} to user {}", path.display(), account.name))?;
    }
    if meta.is_dir() {
        for entry in fs::read_dir(path).with_context(|| format!("listing {}", path.display()))? {
            let entry = entry.with_context(|| format!("listing {}", path.display()))?;
            chown_tree(&entry.path(), account)?;
        }
    }
    Ok(())
}

pub(super) fn unreachable_cluster_dir(
    cluster_dir: &Path,
    account: &ServerAccount,
) -> anyhow::Error {
    let blocking =
        untraversable_ancestor(cluster_dir, account).unwrap_or_else(|| cluster_dir.to_path_buf());
    anyhow!(
        "the PostgreSQL server runs as user `{}` (PostgreSQL refuses to run as root), but that \
         user cannot reach the cluster directory {}: {} is not accessible to it (e.g. a parent \
         directory with mode 0700 owned by root); make it traversable (e.g. `chmod o+x {}`) or \
         choose a data directory elsewhere",
        account.name,
        cluster_dir.display(),
        blocking.display(),
        blocking.display()
    )
}

/// The first ancestor of `dir` (from `/` down) whose mode bits deny `account` the search permission.
/// Best effort (ignores supplementary groups and ACLs): it only names the culprit in an error.
pub(super) fn untraversable_ancestor(dir: &Path, account: &ServerAccount) -> Option<PathBuf> {
    let mut ancestors: Vec<&Path> = dir.ancestors().collect();
    ancestors.reverse();
    ancestors.into_iter().find_map(|path| {
        let meta = fs::metadata(path).ok()?;
        let mode = meta.mode();
        let search_bit = if meta.uid() == account.uid.as_raw() {
            0o100
        } else if meta.gid() == account.gid.as_raw() {
            0o010
        } else {
            0o001
        };
        (mode & search_bit == 0).then(|| path.to_path_buf())
    })
}

/// Refuses to start a second server on a data directory a running postmaster still holds. A stale
/// `postmaster.pid` of a dead process is left to PostgreSQL, which handles it. A postmaster that is
/// shutting down (say, on the parent-death signal after our predecessor was killed) gets a grace
/// period to finish, so that a quick restart of the service does not fail.
pub(super) async fn wait_for_previous_server(cluster_dir: &Path) -> anyhow::Result<()> {
    let deadline = Instant::now() + PREVIOUS_SERVER_GRACE;
    let mut announced = false;
    while let Some(previous) = running_postmaster(cluster_dir)? {
        if !previous.stopping || Instant::now() >= deadline {
            bail!(
                "a PostgreSQL server (pid {pid}) is already running on {}: not starting a second \
                 one; stop it first (e.g. `kill -INT {pid}`)",
                cluster_dir.display(),
                pid = previous.pid
            );
        }
        if !announced {
            info!(
                pid = previous.pid,
                dir = %cluster_dir.display(),
                "waiting for the previous PostgreSQL server on this directory to shut down"
            );
            announced = true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

pub(super) struct RunningPostmaster {
    pub(super) pid: i32,
    /// PostgreSQL writes `stopping` into the status line of postmaster.pid when it begins to shut down.
    pub(super) stopping: bool,
}

/// The live postmaster that `<cluster_dir>/postmaster.pid` names for this directory, if any.
pub(super) fn running_postmaster(cluster_dir: &Path) -> anyhow::Result<Option<RunningPostmaster>> {
    let pid_file = cluster_dir.join("postmaster.pid");
    let contents = match fs::read_to_string(&pid_file) {
        Ok(contents) => contents,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error).with_context(|| format!("reading {}", pid_file.display())),
    };
    // Lines: pid, data directory, start time, port, socket directory, listen address, shmem key, status.
    let mut lines = contents.lines().map(str::trim);
    let Some(pid) = lines
        .next()
        .and_then(|line| line.parse::<i32>().ok())
        .filter(|pid| *pid > 0)
    else {
        return Ok(None);
    };
    let serves_this_dir = lines.next().is_some_and(|line| {
        let recorded = Path::new(line);
        recorded == cluster_dir || fs::canonicalize(recorded).is_ok_and(|real| real == cluster_dir)
    });
    if !serves_this_dir || !is_running_postgres(pid) {
        return Ok(None);
    }
    Ok(Some(RunningPostmaster {
        pid,
        stopping: lines.nth(5) == Some("stopping"),
    }))
}

fn is_running_postgres(pid: i32) -> bool {
    let alive = match kill(Pid::from_raw(pid), None) {
        Ok(()) | Err(Errno::EPERM) => true,
        Err(_) => false,
    };
    alive
        && fs::read_to_string(format!("/proc/{pid}/comm"))
            .is_ok_and(|comm| comm.trim() == "postgres")
}

/// `<cluster_dir>/run` when the socket path fits and needs no quoting in `unix_socket_directories`
/// or the DSN; otherwise a directory under /tmp named after a hash of the cluster path. The bool
/// says the latter.
pub(super) fn choose_socket_dir(cluster_dir: &Path) -> (PathBuf, bool) {
    let run = cluster_dir.join("run");
    let plain = run.to_str().is_some_and(|path| {
        let socket_path_len = path.len() + format!("/.s.PGSQL.{PORT}").len();
        socket_path_len <= MAX_SOCKET_PATH_BYTES
            && path
                .chars()
                .all(|c| c.is_ascii_graphic() && !matches!(c, ',' | '"' | '\'' | '\\'))
    });
    if plain {
        return (run, false);
    }
    let hash = fnv1a(cluster_dir.as_os_str().as_encoded_bytes());
    (PathBuf::from(format!("/tmp/vpn-shop-pg-{hash:016x}")), true)
}

/// FNV-1a: stable across builds, unlike `DefaultHasher`, so a cluster keeps its socket path.
pub(super) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Creates `dir` with mode 0700 for the server account. An existing directory must belong to us
/// or to the server account: under /tmp anyone could have created it first.
pub(super) fn create_private_dir(
    dir: &Path,
    account: Option<&ServerAccount>,
) -> anyhow::Result<()> {
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
        Err(error) => return Err(error).with_context(|| format!("creating {}", dir.display())),
    }
    let meta = fs::symlink_metadata(dir).with_context(|| format!("reading {}", dir.display()))?;
    if !meta.is_dir() {
        bail!("{} exists but is not a directory", dir.display());
    }
    let owner = meta.uid();
    if owner != nix::unistd::geteuid().as_raw() && account.is_none_or(|a| a.uid.as_raw() != owner) {
        bail!(
            "{} belongs to another user (uid {owner}); refusing to use it for the embedded PostgreSQL",
            dir.display()
        );
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .with_context(|| format!("setting mode 0700 on {}", dir.display()))?;
    if let Some(account) = account {
        std::os::unix::fs::lchown(dir, Some(account.uid.as_raw()), Some(account.gid.as_raw()))
            .with_context(|| format!("giving {} to user {}", dir.display(), account.name))?;
    }
    Ok(())
}

/// Opens the server log for appending and marks where this run starts; returns the file and the
/// offset of this run's first line (error messages show only this run's lines).
pub(super) fn open_log(
    path: &Path,
    account: Option<&ServerAccount>,
) -> anyhow::Result<(fs::File, u64)> {
    let mut file = fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    if let Some(account) = account {
        std::os::unix::fs::lchown(path, Some(account.uid.as_raw()), Some(account.gid.as_raw()))
            .with_context(|| format!("giving {} to user {}", path.display(), account.name))?;
    }
    writeln!(
        file,
        "---- vpn-shop (pid {}) starting postgres ----",
        std::process::id()
    )
    .with_context(|| format!("writing {}", path.display()))?;
    let offset = file
        .metadata()
        .with_context(|| format!("reading {}", path.display()))?
        .len();
    Ok((file, offset))
}

/// The last lines `postgres` wrote to its log since `offset`.
pub(super) fn log_tail(path: &Path, offset: u64) -> String {
    let read = || -> io::Result<String> {
        let mut file = fs::File::open(path)?;
        let offset = if file.metadata()?.len() >= offset {
            offset
        } else {
            0
        };
        file.seek(SeekFrom::Start(offset))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    match read() {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
        }
        Err(error) => format!("(could not read {}: {error})", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_dir_falls_back_to_tmp_for_long_paths() {
        let short = Path::new("/var/lib/vpn-shop/postgres");
        assert_eq!(choose_socket_dir(short), (short.join("run"), false));
        let long = PathBuf::from(format!("/data/{}/postgres", "x".repeat(90)));
        let (dir, temporary) = choose_socket_dir(&long);
        assert!(temporary);
        assert!(
            dir.starts_with("/tmp") && dir.as_os_str().len() < 40,
            "{}",
            dir.display()
        );
        assert_eq!(choose_socket_dir(&long), (dir, true), "stable across calls");
        assert!(
            choose_socket_dir(Path::new("/srv/my data/postgres")).1,
            "spaces need /tmp"
        );
    }
}
