//! Where the cluster of a data directory lives: `<data dir>/postgres`, unless this process runs as
//! root and the `postgres` user (which the server runs as) cannot reach the data directory — a
//! shop cloned into `/root` — in which case it lives under the fallback directory, named after
//! the data directory, where that user can reach it.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::binaries::find_server_binaries;
use super::cluster::{ServerAccount, fnv1a, server_account, untraversable_ancestor};
use super::process::account_can_enter;

/// The cluster's directory inside the data directory.
const CLUSTER_SUBDIR: &str = "postgres";

/// At most this much of the data directory's name goes into the fallback directory's name, which
/// keeps the socket path (`<fallback>/<name>/run/.s.PGSQL.5432`) short.
const MAX_NAME_CHARS: usize = 32;

/// The cluster directory of a data directory, and why it is not in the data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterLocation {
    pub dir: PathBuf,
    /// `Some` when the cluster lives under the fallback directory instead of `<data dir>/postgres`.
    pub moved: Option<Moved>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    /// The data directory (canonical), which keeps every other file.
    pub data_dir: PathBuf,
    /// Why, for people: which directory the `postgres` user cannot reach.
    pub reason: String,
}

impl ClusterLocation {
    /// The sentence to tell the person who started the program when the cluster is not where the
    /// documentation of DATA_DIR says it is.
    pub fn notice(&self) -> Option<String> {
        let moved = self.moved.as_ref()?;
        Some(format!(
            "the embedded PostgreSQL cluster is in {}, not in {}: {}; the other files stay in {}",
            self.dir.display(),
            moved.data_dir.join(CLUSTER_SUBDIR).display(),
            moved.reason,
            moved.data_dir.display()
        ))
    }
}

/// Finds (or chooses, for a new cluster) the cluster directory of `data_dir`. An existing cluster
/// is always used where it is, so a shop never trades its data for an empty cluster: first
/// `<data dir>/postgres`, then `<fallback_base>/<name>`. For a new one, as root, the `postgres`
/// user must be able to enter the data directory (checked by running a server binary there as
/// that user, so the kernel decides: modes, ACLs, mounts); if it cannot, the cluster goes under
/// `fallback_base`, which is created (mode 0755) when missing.
pub async fn locate(data_dir: &Path, fallback_base: &Path) -> anyhow::Result<ClusterLocation> {
    let Some(account) = server_account()? else {
        return Ok(ClusterLocation {
            dir: data_dir.join(CLUSTER_SUBDIR),
            moved: None,
        });
    };
    fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    let data_dir =
        fs::canonicalize(data_dir).with_context(|| format!("resolving {}", data_dir.display()))?;
    let in_data_dir = data_dir.join(CLUSTER_SUBDIR);
    if holds_cluster(&in_data_dir) {
        return Ok(ClusterLocation {
            dir: in_data_dir,
            moved: None,
        });
    }
    let fallback = fallback_base.join(fallback_name(&data_dir));
    if holds_cluster(&fallback) {
        let reason = match untraversable_ancestor(&data_dir, &account) {
            Some(blocking) => unreachable_reason(&data_dir, &blocking, &account),
            None => format!(
                "it was created there when user `{}` could not reach {}",
                account.name,
                data_dir.display()
            ),
        };
        return Ok(moved(fallback, data_dir, reason));
    }
    let bin_dir = find_server_binaries()?;
    if account_can_enter(&bin_dir, &data_dir, &account).await? {
        return Ok(ClusterLocation {
            dir: in_data_dir,
            moved: None,
        });
    }
    let blocking = untraversable_ancestor(&data_dir, &account).unwrap_or_else(|| data_dir.clone());
    let reason = unreachable_reason(&data_dir, &blocking, &account);
    create_fallback_base(fallback_base)?;
    Ok(moved(fallback, data_dir, reason))
}

fn moved(dir: PathBuf, data_dir: PathBuf, reason: String) -> ClusterLocation {
    ClusterLocation {
        dir,
        moved: Some(Moved { data_dir, reason }),
    }
}

fn unreachable_reason(data_dir: &Path, blocking: &Path, account: &ServerAccount) -> String {
    format!(
        "PostgreSQL runs as user `{}` (it refuses to run as root), which cannot reach {} ({} is \
         not accessible to it)",
        account.name,
        data_dir.display(),
        blocking.display()
    )
}

/// `initdb` writes PG_VERSION first; a directory without it holds no cluster worth keeping (say,
/// the empty `postgres/` a failed start left behind).
fn holds_cluster(dir: &Path) -> bool {
    dir.join("PG_VERSION").is_file()
}

/// `<name of the data dir>-<hash of its canonical path>`: recognisable in a listing, and two data
/// directories with the same name (two shops, `/root/a/data` and `/root/b/data`) never share one.
fn fallback_name(canonical_data_dir: &Path) -> String {
    let name: String = canonical_data_dir
        .file_name()
        .map(|name| {
            name.to_string_lossy()
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                        c
                    } else {
                        '_'
                    }
                })
                .take(MAX_NAME_CHARS)
                .collect()
        })
        .unwrap_or_default();
    let name = if name.is_empty() { "data".into() } else { name };
    let hash = fnv1a(canonical_data_dir.as_os_str().as_encoded_bytes()) >> 16;
    format!("{name}-{hash:012x}")
}

/// The base must be traversable by the server account; a base someone already made is theirs and
/// left as it is (a wrong mode there is reported when the server cannot reach the cluster).
fn create_fallback_base(base: &Path) -> anyhow::Result<()> {
    if base.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(base).with_context(|| format!("creating {}", base.display()))?;
    fs::set_permissions(base, fs::Permissions::from_mode(0o755))
        .with_context(|| format!("setting mode 0755 on {}", base.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallback_names_keep_the_data_dir_name_and_tell_paths_apart() {
        let name = fallback_name(Path::new("/root/vpn-shop/data"));
        assert!(name.starts_with("data-"), "{name}");
        assert_eq!(name.len(), "data-".len() + 12, "{name}");
        assert_eq!(
            fallback_name(Path::new("/root/vpn-shop/data")),
            name,
            "stable"
        );
        assert_ne!(fallback_name(Path::new("/root/other-shop/data")), name);
        let odd = fallback_name(Path::new("/root/my shop/данные"));
        assert!(odd.starts_with("______-") && odd.is_ascii(), "{odd}");
        let long = fallback_name(&Path::new("/root").join("x".repeat(200)));
        assert_eq!(long.len(), MAX_NAME_CHARS + 1 + 12, "{long}");
        assert!(fallback_name(Path::new("/")).starts_with("data-"));
    }

    #[test]
    fn the_notice_says_where_and_why() {
        let location = moved(
            PathBuf::from("/var/lib/vpn-shop/data-0123456789ab"),
            PathBuf::from("/root/vpn-shop/data"),
            "user `postgres` cannot reach /root/vpn-shop/data".into(),
        );
        let notice = location.notice().expect("moved");
        assert!(
            notice.contains("is in /var/lib/vpn-shop/data-0123456789ab")
                && notice.contains("not in /root/vpn-shop/data/postgres")
                && notice.contains("cannot reach /root/vpn-shop/data")
                && notice.contains("other files stay in /root/vpn-shop/data"),
            "{notice}"
        );
        let in_place = ClusterLocation {
            dir: PathBuf::from("data/postgres"),
            moved: None,
        };
        assert_eq!(in_place.notice(), None);
    }
}
