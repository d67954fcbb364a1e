//! Where things are: the home, the user's name, and how a request's path
//! becomes an absolute one (`~` is the home, relative paths start there).

use std::path::{Path, PathBuf};

/// The home when `$HOME` is not set.
const DEFAULT_HOME: &str = "/home/user";

/// The helper's home: `$HOME`, else `/home/user`.
pub fn home() -> PathBuf {
    match std::env::var_os("HOME") {
        Some(home) if !home.is_empty() => PathBuf::from(home),
        _ => PathBuf::from(DEFAULT_HOME),
    }
}

/// The name of `uid`: `$USER` when set, else read from /etc/passwd by hand
/// (the binary is static, so NSS is not asked), else `user`.
pub fn user_name(uid: u32) -> String {
    if let Some(user) = std::env::var("USER").ok().filter(|u| !u.is_empty()) {
        return user;
    }
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|passwd| name_in_passwd(&passwd, uid))
        .unwrap_or_else(|| "user".to_string())
}

/// The name /etc/passwd's text gives `uid`.
fn name_in_passwd(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let _password = fields.next()?;
        let line_uid: u32 = fields.next()?.parse().ok()?;
        (line_uid == uid && !name.is_empty()).then(|| name.to_string())
    })
}

/// `path` made absolute: `~` and `~/…` are below `home`, a relative path
/// is below `home`, an absolute path stays.
pub fn resolve(path: &str, home: &Path) -> PathBuf {
    if path == "~" {
        return home.to_path_buf();
    }
    if let Some(rest) = path.strip_prefix("~/") {
        return home.join(rest);
    }
    let path = Path::new(path);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        home.join(path)
    }
}

/// A path as the protocol says it.
pub fn display(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tilde_is_the_home() {
        let home = Path::new("/home/user");
        assert_eq!(resolve("~", home), PathBuf::from("/home/user"));
        assert_eq!(resolve("~/a/b", home), PathBuf::from("/home/user/a/b"));
    }

    #[test]
    fn a_relative_path_starts_at_the_home() {
        assert_eq!(resolve("src/main.rs", Path::new("/h")), PathBuf::from("/h/src/main.rs"));
    }

    #[test]
    fn an_absolute_path_stays_as_it_is() {
        assert_eq!(resolve("/etc/hosts", Path::new("/h")), PathBuf::from("/etc/hosts"));
    }

    #[test]
    fn a_tilde_inside_a_name_is_an_ordinary_character() {
        assert_eq!(resolve("~x", Path::new("/h")), PathBuf::from("/h/~x"));
    }

    #[test]
    fn the_user_name_is_found_in_passwd_by_uid() {
        let passwd = "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/bash\n";
        assert_eq!(name_in_passwd(passwd, 1000).as_deref(), Some("user"));
        assert_eq!(name_in_passwd(passwd, 0).as_deref(), Some("root"));
        assert_eq!(name_in_passwd(passwd, 7), None);
    }
}
