//! Backups of the shop's database with the server's own tools: `pg_dump` in its custom format
//! (compressed, consistent — one snapshot — while the shop keeps running) and `pg_restore` into
//! the same or another database, in one transaction.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, bail};
use chrono::Utc;

use crate::db::embedded::find_server_binaries;

/// `pg_dump` / `pg_restore`: from PATH (client packages, the Docker image), else next to the
/// server binaries the embedded cluster uses.
fn tool(name: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .or_else(|| {
            find_server_binaries()
                .ok()
                .map(|dir| dir.join(name))
                .filter(|p| p.is_file())
        })
        .with_context(|| {
            format!("{name} not found: install the PostgreSQL client tools of the server's version")
        })
}

/// The default file of a backup made now: `DATA_DIR/backups/vpn-shop-<UTC time>.dump`.
pub fn default_path(data_dir: &Path) -> PathBuf {
    data_dir.join("backups").join(format!(
        "vpn-shop-{}.dump",
        Utc::now().format("%Y%m%dT%H%M%SZ")
    ))
}

async fn run(mut command: tokio::process::Command, what: &str) -> anyhow::Result<()> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("starting {what}"))?;
    if !output.status.success() {
        bail!(
            "{what} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// Dumps the database at `url` into `output` (written next to it first and renamed when
/// complete, so a file with the final name is always a whole backup). Returns its size.
pub async fn backup(url: &str, output: &Path) -> anyhow::Result<u64> {
    if let Some(dir) = output.parent().filter(|d| !d.as_os_str().is_empty()) {
        tokio::fs::create_dir_all(dir)
            .await
            .with_context(|| format!("creating {}", dir.display()))?;
    }
    let partial = output.with_extension("partial");
    let mut command = tokio::process::Command::new(tool("pg_dump")?);
    command
        .args(["--format=custom", "--no-owner", "--no-privileges", "--file"])
        .arg(&partial)
        .arg("--dbname")
        .arg(url);
    if let Err(e) = run(command, "pg_dump").await {
        let _ = tokio::fs::remove_file(&partial).await;
        return Err(e);
    }
    restrict(&partial).await?;
    tokio::fs::rename(&partial, output)
        .await
        .with_context(|| format!("moving the backup to {}", output.display()))?;
    Ok(tokio::fs::metadata(output).await?.len())
}

/// Backups hold every user's data: only the owner may read them.
async fn restrict(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    tokio::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .await
        .with_context(|| format!("restricting {}", path.display()))
}

/// Replaces the contents of the database at `url` with the backup in `input`: every table of
/// the backup is dropped and recreated from it, in one transaction (on any error nothing
/// changes).
pub async fn restore(url: &str, input: &Path) -> anyhow::Result<()> {
    if !input.is_file() {
        bail!("{} is not a file", input.display());
    }
    // A file pg_restore cannot read is refused before anything is touched.
    let mut list = tokio::process::Command::new(tool("pg_restore")?);
    list.arg("--list").arg(input).stdout(Stdio::null());
    run(list, "reading the backup").await?;
    let mut command = tokio::process::Command::new(tool("pg_restore")?);
    command
        .args([
            "--clean",
            "--if-exists",
            "--no-owner",
            "--no-privileges",
            "--single-transaction",
            "--exit-on-error",
            "--dbname",
        ])
        .arg(url)
        .arg(input);
    run(command, "pg_restore").await
}
