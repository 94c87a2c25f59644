//! Finding the PostgreSQL server binaries installed on the machine, and their version.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::anyhow;

const BINARIES_NOT_FOUND: &str = "PostgreSQL server binaries (initdb, postgres) not found in PATH, \
    `pg_config --bindir` or /usr/lib/postgresql/*/bin: install the PostgreSQL server package \
    (e.g. `apt install postgresql`) or set DATABASE_URL to use an existing server";

/// Where the server binaries are: PATH (a directory containing both `initdb` and `postgres`),
/// then `pg_config --bindir`, then the highest version in `/usr/lib/postgresql/*/bin`.
pub fn find_server_binaries() -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .find_map(|dir| bin_dir_from_path_entry(&dir))
        .or_else(pg_config_bindir)
        .or_else(|| highest_versioned_bin_dir(Path::new("/usr/lib/postgresql")))
        .ok_or_else(|| anyhow!(BINARIES_NOT_FOUND))
}

fn has_server_binaries(dir: &Path) -> bool {
    let executable = |name: &str| {
        fs::metadata(dir.join(name))
            .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
    };
    executable("initdb") && executable("postgres")
}

fn bin_dir_from_path_entry(dir: &Path) -> Option<PathBuf> {
    // A relative PATH entry would make the server depend on our working directory.
    if !dir.is_absolute() || !has_server_binaries(dir) {
        return None;
    }
    // Distributions link /usr/local/bin/postgres -> /usr/lib/postgresql/15/bin/postgres; use the
    // real directory so that initdb, postgres and the server's own helpers come from one install.
    let real_dir = fs::canonicalize(dir.join("postgres"))
        .ok()
        .and_then(|real| real.parent().map(Path::to_path_buf));
    match real_dir {
        Some(real_dir) if has_server_binaries(&real_dir) => Some(real_dir),
        _ => Some(dir.to_path_buf()),
    }
}

fn pg_config_bindir() -> Option<PathBuf> {
    let output = Command::new("pg_config").arg("--bindir").output().ok()?;
    if !output.status.success() {
        return None;
    }
    let dir = PathBuf::from(String::from_utf8(output.stdout).ok()?.trim());
    has_server_binaries(&dir).then_some(dir)
}

/// `<root>/<version>/bin` with the highest version (`9.6` < `10` < `15`) that has both binaries.
fn highest_versioned_bin_dir(root: &Path) -> Option<PathBuf> {
    fs::read_dir(root)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry
                .file_name()
                .to_str()?
                .split('.')
                .map(|part| part.parse::<u32>().ok())
                .collect::<Option<Vec<u32>>>()?;
            let bin = entry.path().join("bin");
            has_server_binaries(&bin).then_some((version, bin))
        })
        .max_by(|(a, _), (b, _)| a.cmp(b))
        .map(|(_, bin)| bin)
}

/// The major version as PG_VERSION spells it: "15.14" -> "15", "9.6.24" -> "9.6", "17beta1" -> "17".
pub(super) fn major_version(version: &str) -> String {
    let digits = |part: &str| {
        part.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
    };
    let mut parts = version.split('.');
    let major = digits(parts.next().unwrap_or_default());
    match (major.parse::<u32>(), parts.next()) {
        (Ok(number), Some(minor)) if number < 10 => format!("{major}.{}", digits(minor)),
        _ => major,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tempfile::TempDir;

    #[test]
    fn server_binaries_are_found_on_this_machine() {
        let dir = find_server_binaries().expect("PostgreSQL server binaries");
        assert!(dir.join("initdb").is_file(), "{}", dir.display());
        assert!(dir.join("postgres").is_file(), "{}", dir.display());
    }

    #[test]
    fn highest_installed_version_wins() {
        let root = TempDir::new().expect("temp dir");
        for version in ["9.6", "10", "15", "16"] {
            let bin = root.path().join(version).join("bin");
            fs::create_dir_all(&bin).expect("bin dir");
            // 16 is incomplete: it lacks initdb and must be skipped.
            let names: &[&str] = if version == "16" {
                &["postgres"]
            } else {
                &["initdb", "postgres"]
            };
            for name in names {
                fs::write(bin.join(name), "").expect("binary");
                fs::set_permissions(bin.join(name), fs::Permissions::from_mode(0o755))
                    .expect("chmod");
            }
        }
        assert_eq!(
            highest_versioned_bin_dir(root.path()),
            Some(root.path().join("15").join("bin"))
        );
    }

    #[test]
    fn major_versions_match_pg_version_files() {
        assert_eq!(major_version("15.14"), "15");
        assert_eq!(major_version("9.6.24"), "9.6");
        assert_eq!(major_version("17beta1"), "17");
    }
}
