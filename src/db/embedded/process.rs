//! Running the server binaries as the server account: `initdb`, and `postgres` itself as a child
//! owned by a dedicated keeper thread that reports its exit and stops it on request.

use std::fs;
use std::io;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::sync::{oneshot, watch};
use tracing::{debug, info, warn};

use super::cluster::{ServerAccount, unreachable_cluster_dir};
use super::{PORT, SUPERUSER};

const INITDB_TIMEOUT: Duration = Duration::from_secs(300);

/// How `stop` ends the server: fast shutdown, then immediate shutdown, then kill, each followed by
/// how long we wait for the process to exit.
const SHUTDOWN_STEPS: [(Signal, Duration); 3] = [
    (Signal::SIGINT, Duration::from_secs(30)),
    (Signal::SIGQUIT, Duration::from_secs(10)),
    (Signal::SIGKILL, Duration::from_secs(10)),
];

/// A command for one of the server binaries, run as the server account in the cluster directory.
fn base_command(program: &Path, cluster_dir: &Path, account: Option<&ServerAccount>) -> Command {
    let mut command = Command::new(program);
    // Our environment may hold secrets, and PG* variables (PGPORT, PGDATA, ...) would change what
    // the server does: pass only what the binaries need.
    command.env_clear();
    for name in ["PATH", "TZ"] {
        if let Some(value) = std::env::var_os(name) {
            command.env(name, value);
        }
    }
    command.current_dir(cluster_dir).stdin(Stdio::null());
    if let Some(account) = account {
        // std drops supplementary groups, then setgid, then setuid, in the child before exec.
        command.uid(account.uid.as_raw()).gid(account.gid.as_raw());
    }
    command
}

/// Runs `postgres --version` as the server account inside the cluster directory: gives the binaries'
/// version and proves that the account can reach the directory.
pub(super) async fn server_version(
    bin_dir: &Path,
    cluster_dir: &Path,
    account: Option<&ServerAccount>,
) -> anyhow::Result<String> {
    let postgres = bin_dir.join("postgres");
    let mut command = base_command(&postgres, cluster_dir, account);
    command.arg("--version");
    let output = match tokio::process::Command::from(command).output().await {
        Ok(output) => output,
        Err(error) if error.kind() == io::ErrorKind::PermissionDenied => match account {
            Some(account) => return Err(unreachable_cluster_dir(cluster_dir, account)),
            None => {
                return Err(error)
                    .with_context(|| format!("running {} --version", postgres.display()));
            }
        },
        Err(error) => {
            return Err(error).with_context(|| format!("running {} --version", postgres.display()));
        }
    };
    if !output.status.success() {
        bail!(
            "{} --version failed ({}): {}",
            postgres.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    // "postgres (PostgreSQL) 15.14 (Debian 15.14-1.pgdg120+1)"
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .split_once("(PostgreSQL) ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .map(str::to_owned)
        .with_context(|| {
            format!(
                "unexpected output of {} --version: {stdout}",
                postgres.display()
            )
        })
}

/// Whether the server account can enter `dir` and run the server there: runs `postgres --version`
/// in `dir` as the account, so the kernel answers (search permission on every parent, ACLs,
/// mounts) rather than a guess from mode bits.
pub(super) async fn account_can_enter(
    bin_dir: &Path,
    dir: &Path,
    account: &ServerAccount,
) -> anyhow::Result<bool> {
    let postgres = bin_dir.join("postgres");
    let mut command = base_command(&postgres, dir, Some(account));
    command
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    match tokio::process::Command::from(command).status().await {
        Ok(_) => Ok(true),
        Err(error) if error.kind() == io::ErrorKind::PermissionDenied => Ok(false),
        Err(error) => Err(error).with_context(|| {
            format!(
                "running {} --version in {} as user {}",
                postgres.display(),
                dir.display(),
                account.name
            )
        }),
    }
}

/// `initdb` for a new cluster: superuser `vpn_shop`, trust on the Unix socket, no TCP logins.
/// Its chatter is kept and shown only when it fails.
pub(super) async fn initdb(
    bin_dir: &Path,
    cluster_dir: &Path,
    account: Option<&ServerAccount>,
) -> anyhow::Result<()> {
    info!(dir = %cluster_dir.display(), "initialising a new PostgreSQL cluster");
    let initdb = bin_dir.join("initdb");
    let mut command = base_command(&initdb, cluster_dir, account);
    command
        .arg("-D")
        .arg(cluster_dir)
        .args([
            "-U",
            SUPERUSER,
            "--auth-local=trust",
            "--auth-host=reject",
            "--encoding=UTF8",
            "--locale=C",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut command = tokio::process::Command::from(command);
    command.kill_on_drop(true);
    let output = tokio::time::timeout(INITDB_TIMEOUT, command.output())
        .await
        .with_context(|| {
            format!(
                "initdb on {} did not finish within {} s",
                cluster_dir.display(),
                INITDB_TIMEOUT.as_secs()
            )
        })?
        .with_context(|| format!("running {}", initdb.display()))?;
    if !output.status.success() {
        bail!(
            "initdb on {} failed ({}):\n{}{}",
            cluster_dir.display(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    debug!(output = %String::from_utf8_lossy(&output.stdout), "initdb finished");
    Ok(())
}

/// The `postgres` command line, run by [`spawn_keeper`]: its output goes to `log_file`.
pub(super) fn server_command(
    bin_dir: &Path,
    cluster_dir: &Path,
    socket_dir: &Path,
    account: Option<&ServerAccount>,
    log_file: fs::File,
) -> anyhow::Result<Command> {
    let mut command = base_command(&bin_dir.join("postgres"), cluster_dir, account);
    // Unix socket only. The socket directory is 0700 and owned by the server user, so only that
    // user and root can connect; our process is one of the two (as root we run the server as
    // `postgres`, otherwise as ourselves), which is why `trust` auth is safe and the socket file's
    // own permissions (unix_socket_permissions) can stay at the default.
    command
        .arg("-D")
        .arg(cluster_dir)
        .arg("-k")
        .arg(socket_dir)
        .args(["-p", &PORT.to_string(), "-c", "listen_addresses="]);
    let stdout = log_file
        .try_clone()
        .context("duplicating the postgres log handle")?;
    command.stdout(stdout).stderr(log_file);
    // Its own process group: Ctrl-C in a terminal must reach only us, so the app drains before we
    // stop the database.
    command.process_group(0);
    let parent = nix::unistd::getpid();
    // SAFETY: the closure runs in the forked child before exec and only makes two async-signal-safe
    // system calls (prctl, getppid); it does not allocate (Errno converts to a raw-os io::Error).
    unsafe {
        command.pre_exec(move || {
            // Set after std's setuid (a credential change clears it), so it survives into postgres:
            // when the keeper thread dies — also when the whole process is SIGKILLed — the server
            // gets SIGINT, a fast shutdown.
            nix::sys::prctl::set_pdeathsig(Signal::SIGINT)?;
            // The parent may have died between fork and prctl; then nobody would ever stop us.
            if nix::unistd::getppid() != parent {
                return Err(io::Error::from(Errno::ESRCH));
            }
            Ok(())
        });
    }
    Ok(command)
}

/// The running postmaster, as seen from async code. The `Child` itself lives on the keeper thread.
pub(super) struct Keeper {
    pid: Pid,
    /// `Some(description of the exit status)` once the keeper has reaped the server.
    exited: watch::Receiver<Option<String>>,
}

/// Spawns the server from a dedicated std thread that owns the child and waits for it. The
/// parent-death signal fires when the *thread* that forked the child exits, so that thread must
/// live exactly as long as the server: a tokio worker or blocking-pool thread would not.
pub(super) async fn spawn_keeper(mut command: Command) -> anyhow::Result<Keeper> {
    let (spawned_tx, spawned_rx) = oneshot::channel::<io::Result<u32>>();
    let (exited_tx, exited_rx) = watch::channel(None);
    std::thread::Builder::new()
        .name("postgres keeper".to_owned())
        .spawn(move || {
            let mut child = match command.spawn() {
                Ok(child) => child,
                Err(error) => {
                    let _ = spawned_tx.send(Err(error));
                    return;
                }
            };
            if spawned_tx.send(Ok(child.id())).is_err() {
                // `start` was cancelled: nobody will ever stop this server, so stop it now.
                if let Ok(pid) = i32::try_from(child.id()) {
                    let _ = kill(Pid::from_raw(pid), Signal::SIGINT);
                }
            }
            let report = match child.wait() {
                Ok(status) => describe_exit(status),
                Err(error) => format!("could not wait for it: {error}"),
            };
            exited_tx.send_replace(Some(report));
        })
        .context("spawning the postgres keeper thread")?;
    let pid = spawned_rx
        .await
        .context("the postgres keeper thread ended before starting the server")?
        .context("starting postgres")?;
    let pid = i32::try_from(pid).context("postgres pid out of range")?;
    Ok(Keeper {
        pid: Pid::from_raw(pid),
        exited: exited_rx,
    })
}

fn describe_exit(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        (None, None) => status.to_string(),
    }
}

impl Keeper {
    pub(super) fn exit_report(&self) -> Option<String> {
        self.exited.borrow().clone()
    }

    /// A keeper that is gone without a report cannot tell us more: treat it as exited.
    fn has_exited(&self) -> bool {
        self.exited.borrow().is_some() || self.exited.has_changed().is_err()
    }

    fn signal(&self, signal: Signal) {
        // The keeper reports only after reaping, so until then the pid is still ours (a zombie
        // at worst) and cannot have been reused.
        if self.has_exited() {
            return;
        }
        if let Err(error) = kill(self.pid, signal) {
            warn!(pid = self.pid.as_raw(), %signal, %error, "signalling the embedded PostgreSQL");
        }
    }

    pub(super) async fn shut_down(&mut self) -> anyhow::Result<()> {
        let mut previous = None;
        for (signal, grace) in SHUTDOWN_STEPS {
            self.escalate(previous, signal);
            let exited = tokio::time::timeout(grace, self.exited.wait_for(Option::is_some))
                .await
                .is_ok();
            if exited {
                self.log_stopped();
                return Ok(());
            }
            previous = Some((signal, grace));
        }
        self.not_stopped()
    }

    /// `shut_down` for `Drop`: the same steps, polling instead of awaiting.
    pub(super) fn shut_down_blocking(&self) -> anyhow::Result<()> {
        let mut previous = None;
        for (signal, grace) in SHUTDOWN_STEPS {
            self.escalate(previous, signal);
            let deadline = Instant::now() + grace;
            while !self.has_exited() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if self.has_exited() {
                self.log_stopped();
                return Ok(());
            }
            previous = Some((signal, grace));
        }
        self.not_stopped()
    }

    /// Sends the next signal, warning when an earlier one (`previous`, with its grace) failed.
    fn escalate(&self, previous: Option<(Signal, Duration)>, signal: Signal) {
        if let Some((previous, grace)) = previous {
            warn!(
                pid = self.pid.as_raw(),
                "embedded PostgreSQL did not exit within {} s of {previous}; sending {signal}",
                grace.as_secs()
            );
        }
        self.signal(signal);
    }

    fn log_stopped(&self) {
        let exit = self
            .exit_report()
            .unwrap_or_else(|| "unknown status".to_owned());
        info!(pid = self.pid.as_raw(), %exit, "embedded PostgreSQL stopped");
    }

    fn not_stopped(&self) -> anyhow::Result<()> {
        bail!(
            "embedded PostgreSQL (pid {}) did not exit even after SIGKILL",
            self.pid
        )
    }
}
